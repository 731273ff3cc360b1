/**
 * Events held in memory while another connection holds the outbox file's write lock: a
 * bounded, ordered queue that a timer (the Clock seam) writes to the file with backoff, oldest
 * first, in small chunks so that no attempt blocks the event loop for long. While anything is
 * held, every new event queues behind it, so the order of `seq` is the order of storage. An
 * event is durable (acknowledged) only once written; `whenStored` waits for that.
 *
 * @module
 */
import { getLogger } from "../logger.ts";
import { backoffDelay, type BackoffOptions, type Clock, type TimerId } from "../util/mod.ts";
import { errorText } from "../util/mod.ts";
import { isBusy } from "./busy.ts";
import type { CheckedEvent } from "./event.ts";

const log = getLogger("outbox");

/** An event waiting for the lock, its seq and key already assigned. */
export interface HeldEvent {
  seq: number;
  idempotencyKey: string;
  event: CheckedEvent;
}

/** Most events held in memory by default. */
export const DEFAULT_HOLD_EVENTS = 10_000;
/** Most bytes held in memory by default (payload, kind and keys, as characters). */
export const DEFAULT_HOLD_BYTES = 16 * 1024 * 1024;
/** Events written per attempt: a chunk is one transaction of a few milliseconds. */
const CHUNK = 256;
/** The retry schedule while the lock is held: 5 ms doubling to 250 ms, jittered. */
const HOLD_BACKOFF: BackoffOptions = { baseMs: 5, maxMs: 250 };
/** What an event costs beyond its strings (the row, the object). */
const EVENT_OVERHEAD = 64;

/** Thrown by `enqueue` when the in-memory queue is full: the event was not taken. */
export class OutboxHoldFullError extends Error {
  override name = "OutboxHoldFullError";
  /** The outbox file. */
  readonly path: string;
  /** Events held when this one was refused. */
  readonly held: number;

  constructor(path: string, kind: string, held: number, detail: string) {
    super(
      `Outbox ${path} refused a "${kind}" event: the database has been locked by another ` +
        `connection for too long and ${held} event(s) already wait in memory (${detail}); ` +
        `nothing was stored`,
    );
    this.path = path;
    this.held = held;
  }
}

/** Options of {@linkcode HeldEvents}. */
export interface HoldOptions {
  /** The outbox file, for messages. */
  path: string;
  clock: Clock;
  /** Jitter source, in [0, 1). */
  random: () => number;
  maxEvents: number;
  maxBytes: number;
  /** Writes `events` (oldest first) in one transaction, or throws (a busy error when locked). */
  write: (events: readonly HeldEvent[]) => void;
  /** Called after each chunk is written, with how many were. */
  onStored: (count: number) => void;
}

/** The bounded in-memory queue of events waiting for the lock, and its retry timer. */
export class HeldEvents {
  readonly #o: HoldOptions;
  #events: HeldEvent[] = [];
  #head = 0;
  #bytes = 0;
  #failures = 0;
  #since: number | undefined;
  #timer: TimerId | undefined;
  #loggedFailure = false;
  readonly #waiters = new Map<number, ((durable: boolean) => void)[]>();

  constructor(options: HoldOptions) {
    this.#o = options;
  }

  /** Events held. */
  get size(): number {
    return this.#events.length - this.#head;
  }

  /** The oldest held event's seq, if any. */
  get firstSeq(): number | undefined {
    return this.#events[this.#head]?.seq;
  }

  /**
   * Holds `entry` behind the others and arms the retry. Throws {@linkcode OutboxHoldFullError}
   * (holding nothing) when the queue is full.
   */
  hold(entry: HeldEvent): void {
    const bytes = sizeOf(entry);
    const { maxEvents, maxBytes, path } = this.#o;
    if (this.size >= maxEvents || (this.size > 0 && this.#bytes + bytes > maxBytes)) {
      const detail = this.size >= maxEvents
        ? `at most ${maxEvents} events`
        : `${this.#bytes} of at most ${maxBytes} bytes`;
      throw new OutboxHoldFullError(path, entry.event.kind, this.size, detail);
    }
    if (this.size === 0) {
      this.#since = this.#o.clock.now();
      log.warn(
        `Outbox ${path} is locked by another connection: holding events in memory until it ` +
          `is free (at most ${maxEvents} events, ${maxBytes} bytes)`,
      );
    }
    this.#events.push(entry);
    this.#bytes += bytes;
    this.#arm();
  }

  /**
   * Resolves `true` once the event `seq` (held now) is written, `false` if the outbox closes
   * first or `signal` aborts. A seq that is not held resolves `true` at once.
   */
  whenStored(seq: number, signal?: AbortSignal): Promise<boolean> {
    const first = this.firstSeq;
    if (first === undefined || seq < first) return Promise.resolve(true);
    if (signal?.aborted) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const list = this.#waiters.get(seq) ?? [];
      const done = (durable: boolean) => {
        signal?.removeEventListener("abort", onAbort);
        resolve(durable);
      };
      const onAbort = () => {
        const left = (this.#waiters.get(seq) ?? []).filter((w) => w !== done);
        if (left.length > 0) this.#waiters.set(seq, left);
        else this.#waiters.delete(seq);
        resolve(false);
      };
      list.push(done);
      this.#waiters.set(seq, list);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * Writes what it can now, oldest first, one chunk per attempt; arms the next attempt (at
   * once after progress, with backoff when the lock is still held). Returns whether anything
   * is still held.
   */
  attempt(): boolean {
    if (this.#timer !== undefined) this.#o.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.size === 0) return false;
    const chunk = this.#events.slice(this.#head, this.#head + CHUNK);
    try {
      this.#o.write(chunk);
    } catch (error) {
      this.#failures++;
      if (!isBusy(error) && !this.#loggedFailure) {
        this.#loggedFailure = true;
        log.error(
          `Outbox ${this.#o.path} could not store ${this.size} held event(s), retrying: ` +
            errorText(error),
        );
      }
      this.#arm();
      return true;
    }
    this.#taken(chunk.length);
    this.#o.onStored(chunk.length);
    if (this.size > 0) {
      this.#timer = this.#o.clock.setTimeout(() => this.attempt(), 0);
      return true;
    }
    const waited = Math.round(this.#o.clock.now() - (this.#since ?? this.#o.clock.now()));
    log.info(`Outbox ${this.#o.path} is free again: held events stored after ${waited} ms`);
    this.#failures = 0;
    this.#since = undefined;
    this.#loggedFailure = false;
    return false;
  }

  /**
   * At close: one last attempt at everything (the caller has made the lock wait longer), then
   * gives up on what is left, logging it. Every waiter is answered. Returns the first seq lost,
   * if any was.
   */
  close(): number | undefined {
    if (this.#timer !== undefined) this.#o.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    while (this.size > 0) {
      const chunk = this.#events.slice(this.#head);
      try {
        this.#o.write(chunk);
      } catch (error) {
        log.error(
          `Outbox ${this.#o.path} closed with ${this.size} event(s) held in memory that could ` +
            `not be stored (${errorText(error)}); they are lost, and none of them had been ` +
            `acknowledged as durable`,
        );
        break;
      }
      this.#taken(chunk.length);
    }
    const lost = this.firstSeq;
    this.#events = [];
    this.#head = 0;
    this.#bytes = 0;
    for (const list of this.#waiters.values()) for (const done of list) done(false);
    this.#waiters.clear();
    return lost;
  }

  /** The first `count` held events were written: forget them and answer their waiters. */
  #taken(count: number): void {
    for (let i = 0; i < count; i++) {
      const entry = this.#events[this.#head++] as HeldEvent;
      this.#bytes -= sizeOf(entry);
      const list = this.#waiters.get(entry.seq);
      if (list) {
        this.#waiters.delete(entry.seq);
        for (const done of list) done(true);
      }
    }
    if (this.#head > 1024 && this.#head * 2 > this.#events.length) {
      this.#events = this.#events.slice(this.#head);
      this.#head = 0;
    }
    if (this.size === 0) {
      this.#events = [];
      this.#head = 0;
      this.#bytes = 0;
    }
  }

  #arm(): void {
    if (this.#timer !== undefined) return;
    const delay = backoffDelay(this.#failures + 1, HOLD_BACKOFF, this.#o.random);
    this.#timer = this.#o.clock.setTimeout(() => {
      this.#timer = undefined;
      this.attempt();
    }, delay);
  }
}

function sizeOf(entry: HeldEvent): number {
  const { event } = entry;
  return event.payload.length + event.kind.length + (event.dedupeKey?.length ?? 0) +
    entry.idempotencyKey.length + EVENT_OVERHEAD;
}
