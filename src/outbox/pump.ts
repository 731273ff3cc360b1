/**
 * The delivery pump: hands the oldest events, in batches and in sequence order, to the send,
 * and applies what it reports. A transient failure backs the head off (see retry.ts) and is
 * retried forever; a permanent one poisons the record. `wake()` retries at once, a backstop poll
 * keeps draining while started, `flush()` waits for the queue to drain or stall, and `stop()`
 * and `close()` abort the send in flight.
 *
 * @module
 */
import { getLogger } from "../logger.ts";
import { backoffDelay, type BackoffOptions, type Clock, type TimerId } from "../util/mod.ts";
import { isBusy } from "./busy.ts";
import type { ChangeFeed } from "./changes.ts";
import type { OutboxQueue } from "./queue.ts";
import { RetrySchedule } from "./retry.ts";
import {
  type FailureClass,
  failureText,
  isPermanent,
  type OutboxSend,
  readResults,
} from "./send.ts";
import type { OutboxRecord } from "./store.ts";

const log = getLogger("outbox");

/** The retry schedule while another connection holds the file's lock: 5 ms doubling to 250 ms. */
const LOCKED_BACKOFF: BackoffOptions = { baseMs: 5, maxMs: 250 };

/** Options of {@linkcode Pump}. */
export interface PumpOptions {
  /** The transport; `start()` throws without one. */
  send: OutboxSend | undefined;
  /** The backstop poll while started, in ms. */
  pollMs: number;
  backoff: BackoffOptions;
  /** Jitter source, in [0, 1). */
  random: () => number;
  classify: (error: unknown) => FailureClass;
  clock: Clock;
}

/** Delivers the queue through the send. */
export class Pump {
  readonly #queue: OutboxQueue;
  readonly #changes: ChangeFeed;
  readonly #send: OutboxSend | undefined;
  readonly #pollMs: number;
  readonly #classify: (error: unknown) => FailureClass;
  readonly #clock: Clock;
  readonly #retry: RetrySchedule;

  #running = false;
  #closed = false;
  #pumping: Promise<void> | undefined;
  #kickQueued = false;
  /** A kick came while the loop was finishing: run it again once it has. */
  #kickAgain = false;
  /** Delivered rows whose removal found the file locked: removed before anything is read. */
  #unremoved: { acked: OutboxRecord[]; contiguous: boolean } | undefined;
  /** Consecutive attempts that found the file locked. */
  #lockedAttempts = 0;
  readonly #random: () => number;
  #abort: AbortController | undefined;
  #retryTimer: TimerId | undefined;
  #pollTimer: TimerId | undefined;

  constructor(queue: OutboxQueue, changes: ChangeFeed, options: PumpOptions) {
    this.#queue = queue;
    this.#changes = changes;
    this.#send = options.send;
    this.#pollMs = options.pollMs;
    this.#classify = options.classify;
    this.#clock = options.clock;
    this.#random = options.random;
    this.#retry = new RetrySchedule({ backoff: options.backoff, random: options.random });
  }

  /** Failures since the last delivery. */
  get consecutiveFailures(): number {
    return this.#retry.failures;
  }

  /** When the head is next tried while backing off; 0 when it is due now. */
  get nextAttemptAt(): number {
    return this.#retry.nextAttemptAt;
  }

  /** Starts delivering: drains now, then keeps a backstop poll. Requires a `send`. */
  start(): void {
    if (!this.#send) {
      throw new Error(
        `Outbox ${this.#queue.path} has no send function; pass options.send to deliver`,
      );
    }
    if (this.#running) return;
    this.#running = true;
    this.#armPoll();
    this.kick();
  }

  /**
   * Retries the head now, cancelling the current backoff. If a send is in flight and then
   * fails, the retry follows at once.
   */
  wake(): void {
    if (this.#closed) return;
    this.#retry.wake(this.#queue.inFlight.size > 0);
    if (this.#retryTimer !== undefined) {
      this.#clock.clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
    }
    this.kick();
  }

  /** Stops delivering: cancels the timers, aborts the send, resolves once the pump let go. */
  async stop(): Promise<void> {
    this.#running = false;
    this.#clearTimers();
    this.#abort?.abort(new Error("Outbox stopped"));
    this.#changes.wakeWaiters();
    await this.#pumping;
  }

  /**
   * Resolves with the pending count once the queue is empty, a send has failed (the head is
   * backing off), the pump stops, or `signal` aborts.
   */
  async flush(options: { signal?: AbortSignal } = {}): Promise<number> {
    const { signal } = options;
    this.kick();
    for (;;) {
      const left = this.#queue.pending + this.#queue.held;
      if (
        this.#closed || !this.#running || left === 0 || signal?.aborted ||
        (this.#retry.nextAttemptAt > this.#clock.now() && this.#queue.inFlight.size === 0)
      ) {
        return left;
      }
      await this.#changes.nextChange(signal);
    }
  }

  /** For good: cancels the timers and aborts the send; its outcome will be ignored. */
  close(): void {
    this.#running = false;
    this.#closed = true;
    this.#clearTimers();
    this.#abort?.abort(new Error("Outbox closed"));
  }

  /** Runs the pump soon (once per burst of calls). */
  kick(): void {
    if (!this.#running || this.#closed || this.#kickQueued) return;
    this.#kickQueued = true;
    queueMicrotask(() => {
      this.#kickQueued = false;
      if (!this.#running || this.#closed) return;
      if (this.#pumping) {
        // The loop may be past its last look at the queue: look again once it is done.
        this.#kickAgain = true;
        return;
      }
      this.#kickAgain = false;
      this.#pumping = this.#pump().finally(() => {
        this.#pumping = undefined;
        if (this.#kickAgain) {
          this.#kickAgain = false;
          this.kick();
        }
      });
    });
  }

  #clearTimers(): void {
    if (this.#retryTimer !== undefined) this.#clock.clearTimeout(this.#retryTimer);
    if (this.#pollTimer !== undefined) this.#clock.clearTimeout(this.#pollTimer);
    this.#retryTimer = undefined;
    this.#pollTimer = undefined;
  }

  #armPoll(): void {
    if (!this.#running || this.#closed) return;
    this.#pollTimer = this.#clock.setTimeout(() => {
      this.#pollTimer = undefined;
      this.kick();
      this.#armPoll();
    }, this.#pollMs);
  }

  #armRetry(delayMs: number): void {
    if (!this.#running || this.#closed) return;
    if (this.#retryTimer !== undefined) this.#clock.clearTimeout(this.#retryTimer);
    this.#retryTimer = this.#clock.setTimeout(() => {
      this.#retryTimer = undefined;
      this.kick();
    }, Math.max(0, delayMs));
  }

  /** Another connection holds the file's lock: try again soon; the relay is not at fault. */
  #armLocked(): void {
    this.#lockedAttempts++;
    if (this.#lockedAttempts === 1) {
      log.debug(`Outbox ${this.#queue.path} is locked by another connection; delivery waits`);
    }
    this.#armRetry(backoffDelay(this.#lockedAttempts, LOCKED_BACKOFF, this.#random));
  }

  async #pump(): Promise<void> {
    const queue = this.#queue;
    try {
      let next: { records: OutboxRecord[]; epoch: number } | undefined;
      while (this.#running && !this.#closed) {
        const now = this.#clock.now();
        if (this.#retry.nextAttemptAt > now) {
          this.#armRetry(this.#retry.nextAttemptAt - now);
          return;
        }
        if (this.#unremoved) {
          const { acked, contiguous } = this.#unremoved;
          queue.delivered(acked, contiguous);
          this.#unremoved = undefined;
          this.#changes.notify("delivered");
          next = undefined;
        }
        // A batch read ahead during the last send is good while nothing but appends happened.
        const records = next !== undefined && next.epoch === queue.epoch &&
            next.records.length > 0 && !queue.batches.isolating
          ? next.records
          : queue.batches.next();
        next = undefined;
        this.#lockedAttempts = 0;
        if (records.length === 0) {
          queue.reclaimIfWorthIt();
          return;
        }
        const resolved = await this.#deliver(records, () => {
          // While the send is on the wire: read and parse the batch after this one.
          const last = records[records.length - 1];
          if (last === undefined || queue.batches.isolating) return;
          const ahead = queue.batches.after(last.seq);
          if (ahead) next = { records: ahead, epoch: queue.epoch };
        });
        if (!resolved) next = undefined;
        if (this.#unremoved) {
          this.#armLocked();
          return;
        }
      }
    } catch (error) {
      if (this.#closed) return;
      if (isBusy(error)) {
        this.#armLocked();
        return;
      }
      // A storage error (disk full, I/O): back off and try again; nothing is lost.
      log.error(`Outbox ${queue.path} delivery loop failed: ${failureText(error)}`);
      this.#failed(`storage error: ${failureText(error)}`);
      this.#armRetry(Math.max(0, this.#retry.nextAttemptAt - this.#clock.now()));
    }
  }

  /**
   * Sends one batch and applies the outcome. `whileSending` runs once the send has started.
   * Returns whether every record was resolved (delivered or poisoned).
   */
  async #deliver(records: OutboxRecord[], whileSending: () => void): Promise<boolean> {
    const send = this.#send;
    if (!send) return false;
    const inFlight = this.#queue.inFlight;
    const controller = new AbortController();
    this.#abort = controller;
    for (const record of records) inFlight.add(record.seq);
    this.#retry.sending();
    let results: unknown;
    let thrown: { error: unknown } | undefined;
    try {
      const sending = send(records, { signal: controller.signal });
      whileSending();
      results = await sending;
    } catch (error) {
      thrown = { error };
    } finally {
      inFlight.clear();
      this.#abort = undefined;
    }
    // Closed meanwhile: the database is gone; the records stay queued in the file.
    if (this.#closed) return false;
    if (thrown) {
      // Aborted by stop(): not an attempt.
      if (controller.signal.aborted) return false;
      this.#applyThrown(records, thrown.error);
      return false;
    }
    return this.#applyResults(records, results);
  }

  #applyThrown(records: OutboxRecord[], error: unknown): void {
    const text = failureText(error);
    const first = records[0];
    if (!first) return;
    if (isPermanent(this.#classify, error)) {
      if (records.length === 1) {
        this.#queue.poison([{ record: first, error: text }]);
        this.#progressed();
        return;
      }
      // Which record was refused is unknown: resend one at a time through this batch.
      const last = records[records.length - 1] as OutboxRecord;
      this.#queue.batches.isolateThrough(last.seq);
      log.warn(
        `Outbox send of ${records.length} events (seq ${first.seq}..${last.seq}) ` +
          `failed permanently: ${text}; retrying them one at a time`,
      );
      return;
    }
    this.#noteAttempts(records, text);
    this.#failed(text);
  }

  /** Counts a failed attempt against `records` in the file; skipped while the file is locked. */
  #noteAttempts(records: readonly OutboxRecord[], text: string): void {
    try {
      this.#queue.failed(records, text);
    } catch (error) {
      if (!isBusy(error)) throw error;
    }
  }

  #applyResults(records: OutboxRecord[], results: unknown): boolean {
    const { acked, refused, failure } = readResults(records, results, {
      classify: this.#classify,
    });
    if (acked.length > 0 || refused.length > 0) {
      this.#progressed();
      let removed = true;
      if (acked.length > 0) {
        const contiguous = acked.every((r, i) => records[i] === r);
        try {
          this.#queue.delivered(acked, contiguous);
        } catch (error) {
          if (!isBusy(error)) throw error;
          // Delivered, but the file is locked: remove them before reading anything again.
          this.#unremoved = { acked, contiguous };
          removed = false;
        }
      }
      if (refused.length > 0) this.#queue.poison(refused);
      if (acked.length > 0 && removed) this.#changes.notify("delivered");
    }
    if (failure) {
      this.#noteAttempts(records.slice(failure.at), failure.text);
      this.#failed(failure.text);
      return false;
    }
    return true;
  }

  /** A delivery made progress: the backoff resets. */
  #progressed(): void {
    this.#retry.progressed(this.#clock.now(), this.#queue.pending);
  }

  /** A transient failure: back off (or retry at once if woken during the send). */
  #failed(text: string): void {
    const now = this.#clock.now();
    this.#queue.noteError(text, Math.round(now));
    this.#retry.failed(now, text);
    // The pump arms the retry timer when it sees the head is not due.
    this.#changes.notify("failed");
  }
}
