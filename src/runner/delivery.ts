/**
 * Delivery: the I/O around the {@linkcode Inbox}. It polls the relay for unread messages (at
 * start, after every bus reconnect, every 5 s while the bus is down, and until a poll succeeds),
 * hands batches to the provider when it is ready, mirrors each prompt once, answers the turn's
 * messages with its responses, and marks each message read once: with its reply, or with its
 * failure reply when its turn failed for good (after `turnRetries` retries with backoff, or at
 * once after an operator's interrupt).
 *
 * @module
 */
import type { ProviderAdapter } from "../adapters/mod.ts";
import type { EnqueueResult } from "../outbox/mod.ts";
import { getLogger } from "../logger.ts";
import { OversizedAnswerError } from "../relay/mod.ts";
import type { Message, ReplyObligation } from "../types.ts";
import {
  backoffDelay,
  type BackoffOptions,
  type Clock,
  errorText,
  type TimerId,
} from "../util/mod.ts";
import type { EventQueue } from "./event_queue.ts";
import type { Inbox } from "./inbox.ts";
import { PeerGuard } from "./peer_guard.ts";
import type { ReplyObligationCache } from "./reply_obligations.ts";

const log = getLogger("runner");

/** The page size of an unread poll. */
export const POLL_LIMIT = 100;
/** The most pages one poll reads (10,000 messages); the rest wait for the next poll. */
export const MAX_PAGES = 100;
/** How long after a failed poll, or a full page of nothing new, the next one runs. */
export const POLL_RETRY_MS = 5_000;

/** The delay before a failed turn's messages are tried again: 1 s doubling, at most 30 s. */
export const TURN_RETRY_BACKOFF: BackoffOptions = { baseMs: 1_000, maxMs: 30_000 };

/** What delivery needs from the runner. */
export interface DeliveryDeps {
  inbox: Inbox;
  events: EventQueue;
  clock: Clock;
  obligations: Pick<ReplyObligationCache, "annotate" | "markDirty" | "markAnswered">;
  /** One page of unread messages from the relay, oldest first (`after`: ids above it only). */
  poll(options: { limit: number; after?: number; signal: AbortSignal }): Promise<Message[]>;
  /** The provider, when one runs and can take a turn now. */
  readyAdapter(): ProviderAdapter | undefined;
  /** Whether the runner is stopping: nothing new starts. */
  stopping(): boolean;
  /** A hand-over began or ended (the status holds busy during one). */
  onHandingChange(): void;
  /** A poll succeeded: the relay answers again. */
  onPollSuccess(): void;
  /** Messages were handed over. */
  onDelivered(count: number): void;
  /** The delay before a failed turn is tried again; default {@linkcode TURN_RETRY_BACKOFF}. */
  retryBackoff?: BackoffOptions;
  /** Replies a peer may get in a minute before the loop guard holds the rest. */
  repliesPerMinute?: number;
}

/** Polls, hands over and answers; see the module doc. */
export class Delivery {
  readonly #d: DeliveryDeps;
  #drainTimer: TimerId | undefined;
  #pollTimer: TimerId | undefined;
  #fallbackTimer: TimerId | undefined;
  #pollAbort: AbortController | undefined;
  #pollRunning: Promise<void> | undefined;
  #lastDeliveryAt: number | undefined;
  /** No hand-over before this time (a failed turn backs off before its retry). */
  #holdUntil = 0;
  #retries = 0;
  /** An operator interrupted the current turn: it fails for good, without a retry. */
  #interrupted = false;
  readonly #guard: PeerGuard;
  /** Replies held by the loop guard: neither sent nor marked read yet. */
  #held: Array<{ message: Message; text: string; at: number }> = [];
  #releaseTimer: TimerId | undefined;

  constructor(deps: DeliveryDeps) {
    this.#d = deps;
    this.#guard = new PeerGuard({
      ...(deps.repliesPerMinute ? { limit: deps.repliesPerMinute } : {}),
      now: () => deps.clock.now(),
    });
  }

  /** When messages were last handed over (epoch ms). */
  get lastDeliveryAt(): number | undefined {
    return this.#lastDeliveryAt;
  }

  // --- In -----------------------------------------------------------------------------------

  /** A message pushed on the bus (or polled). */
  receive(message: Message): void {
    if (!this.#d.inbox.receive(message)) return;
    this.#d.events.receipt(message.id, "received");
    this.#d.obligations.annotate({ id: message.id, body: message.body, from: message.from });
    this.#d.obligations.markDirty();
    this.drainSoon(0);
  }

  /** Polls unread messages after `delayMs` (one poll at a time; a second request follows it). */
  pollSoon(delayMs: number): void {
    if (this.#d.stopping()) return;
    this.#d.clock.clearTimeout(this.#pollTimer);
    this.#pollTimer = this.#d.clock.setTimeout(() => void this.#startPoll(), delayMs);
  }

  /** The bus went down (poll every 5 s, nothing is pushed) or came back. */
  busDown(down: boolean): void {
    if (down && this.#fallbackTimer !== undefined && !this.#d.stopping()) return; // Armed.
    this.#d.clock.clearTimeout(this.#fallbackTimer);
    this.#fallbackTimer = undefined;
    if (!down || this.#d.stopping()) return;
    const tick = () => {
      if (this.#d.inbox.poll.phase === "idle") this.pollSoon(0);
      this.#fallbackTimer = this.#d.clock.setTimeout(tick, POLL_RETRY_MS);
    };
    this.#fallbackTimer = this.#d.clock.setTimeout(tick, POLL_RETRY_MS);
  }

  #startPoll(): Promise<void> {
    if (this.#d.stopping() || !this.#d.inbox.beginPoll()) return Promise.resolve();
    this.#pollRunning = this.#poll().finally(() => (this.#pollRunning = undefined));
    return this.#pollRunning;
  }

  async #poll(): Promise<void> {
    const abort = new AbortController();
    this.#pollAbort = abort;
    let caughtUp = false;
    try {
      caughtUp = await this.#readPages(abort.signal);
    } catch (error) {
      if (this.#d.stopping()) return;
      log.warn(`inbox poll failed (${errorText(error)}); retrying in 5 s`);
      this.pollSoon(POLL_RETRY_MS);
    } finally {
      this.#pollAbort = undefined;
      if (this.#d.inbox.endPoll({ caughtUp })) this.pollSoon(0);
      this.drainSoon(0);
    }
  }

  /**
   * Reads unread pages, each after the last id of the one before, until a page is short. A relay
   * that ignores `after` (the same page again) ends the paging: the rest is polled for once this
   * lot is answered. A page over the byte limit is read again one message at a time; a single
   * message over it is refused (see {@linkcode Delivery.#refuseTooLarge}). Returns true once the
   * pages were read.
   */
  async #readPages(signal: AbortSignal): Promise<boolean> {
    let after: number | undefined;
    let limit = POLL_LIMIT;
    /** The relay answered a page (for the first time in this poll). */
    let answered = false;
    let total = 0;
    let fresh = 0;
    for (let pages = 1;; pages++) {
      let page: Message[];
      try {
        page = await this.#d.poll({ limit, ...(after !== undefined ? { after } : {}), signal });
      } catch (error) {
        if (!(error instanceof OversizedAnswerError)) throw error;
        if (limit > 1) {
          limit = 1; // One at a time: find the message that is too large.
          continue;
        }
        if (!error.first) throw error;
        this.#refuseTooLarge(error.first, error.limit);
        after = error.first.id;
        limit = POLL_LIMIT;
        continue;
      }
      if (this.#d.stopping()) return false;
      if (!answered) this.#d.onPollSuccess();
      answered = true;
      const outcome = this.#d.inbox.acceptPage(page, { limit });
      // Never delivered: marked read so they cannot fill every page of the inbox.
      for (const id of outcome.notChat) this.markRead(id, this.#d.clock.now());
      for (const m of outcome.fresh) {
        this.#d.events.receipt(m.id, "received");
        this.#d.obligations.annotate({ id: m.id, body: m.body, from: m.from });
      }
      if (outcome.fresh.length > 0) this.#d.obligations.markDirty();
      total += page.length;
      fresh += outcome.fresh.length;
      const last = Math.max(0, ...page.map((m) => m.id));
      const full = page.length >= limit;
      const more = full && (after === undefined || last > after) && pages < MAX_PAGES;
      if (!more) {
        // A full page of nothing new from a relay that cannot page: try again soon.
        if (full && outcome.fresh.length === 0) this.pollSoon(POLL_RETRY_MS);
        log.info(`inbox poll: ${total} unread message(s) in ${pages} page(s), ${fresh} new`);
        return true;
      }
      after = last;
      limit = POLL_LIMIT;
    }
  }

  /**
   * A message too large to read (a hostile or broken relay): it is never delivered, but it is
   * answered with a failure reply and marked read, so the sender hears and the next start does
   * not trip on it again. Logged once.
   */
  #refuseTooLarge(first: { id: number; from: string }, limit: number): void {
    if (!this.#d.inbox.refuse(first.id)) return;
    const why = `the message is too large to deliver (over ${Math.floor(limit / 1024)} KiB)`;
    log.error(`message #${first.id} from ${first.from} refused: ${why}`);
    const at = this.#d.clock.now();
    const message = { id: first.id, from: first.from };
    const stored = this.#d.events.failureReply(message, why, at);
    this.#d.events.receipt(first.id, "failed", { at, detail: why });
    this.#readAnswered(first.id, stored, at);
    this.#d.obligations.markAnswered([first.id]);
  }

  // --- Hand-over ----------------------------------------------------------------------------

  /** Tries a hand-over after `delayMs`. */
  drainSoon(delayMs: number): void {
    if (this.#d.stopping()) return;
    this.#d.clock.clearTimeout(this.#drainTimer);
    this.#drainTimer = this.#d.clock.setTimeout(() => void this.#drain(), delayMs);
  }

  async #drain(): Promise<void> {
    const adapter = this.#d.readyAdapter();
    if (this.#d.stopping() || !adapter) return;
    const wait = this.#holdUntil - this.#d.clock.now();
    if (wait > 0) return this.drainSoon(wait);
    const opened = this.#d.inbox.beginHandOver();
    if (!opened) return;
    const { batch, announce } = opened;
    this.#interrupted = false;
    this.#d.onHandingChange();
    // Announced before the hand-over, so they come before anything the turn produces; once per
    // message, so a retried hand-over is not echoed or claimed twice.
    const now = this.#d.clock.now();
    for (const message of announce) {
      this.#d.events.prompt(message, now);
      this.#d.events.task(message, "in_progress");
    }
    try {
      await adapter.deliver(batch);
      if (!this.#d.inbox.handOverDone()) {
        // The turn was given up during the hand-over (a restart): it is back in the queue.
        throw new Error("the provider was restarted meanwhile");
      }
    } catch (error) {
      log.warn(`delivery failed (${errorText(error)}); the message(s) stay queued`);
      this.#d.inbox.handOverFailed();
      this.#d.onHandingChange();
      this.drainSoon(1_000);
      return;
    }
    this.#lastDeliveryAt = this.#d.clock.now();
    for (const message of batch) {
      this.#d.events.receipt(message.id, "handed", { at: this.#lastDeliveryAt });
    }
    this.#d.onDelivered(batch.length);
    log.info(`delivered message(s) ${batch.map((m) => `#${m.id}`).join(", ")}`);
    this.#d.onHandingChange();
    // The turn may have ended (or failed) while the hand-over was under way.
    if (this.#d.inbox.turn.phase === "idle") this.drainSoon(0);
  }

  // --- The turn -----------------------------------------------------------------------------

  /**
   * A response: answers the turn's messages that owe one (a `chat` that is not itself a reply),
   * once each. A reply the agent was shown gets no reply back, so two agents cannot answer each
   * other forever: that answer, like one that answers nothing, goes to the mirror only. Replies
   * past the peer's rate are held (see {@linkcode PeerGuard}).
   */
  respond(text: string, at: number, replyTo?: number): void {
    const answered = this.#d.inbox.answer(replyTo);
    const owed = answered.filter((m) => m.replyTo === undefined);
    if (owed.length < answered.length || answered.length === 0) {
      this.#d.events.mirror("response", text, { at });
    }
    for (const message of answered) {
      if (message.replyTo !== undefined) this.#d.events.receipt(message.id, "answered", { at });
    }
    for (const message of owed) {
      const verdict = this.#guard.check(message.from, Date.parse(message.createdAt));
      if (verdict === "send") {
        this.#reply(message, text, at);
        continue;
      }
      if (verdict === "suspect") {
        log.warn(
          `loop suspected: over ${
            this.#guard.rate(message.from)
          } replies a minute to ${message.from}; holding them`,
        );
        this.#d.events.insight("loop_suspected", {
          peer: message.from,
          repliesLastMinute: this.#guard.rate(message.from),
        });
      }
      this.#held.push({ message, text, at });
      this.#releaseSoon();
    }
  }

  #reply(message: Message, text: string, at: number): void {
    const stored = this.#d.events.reply(message, text, at);
    if (stored) this.#d.events.receipt(message.id, "answered", { at });
    // Read together with its answer, not at the end of the turn: a kill later in the turn must
    // not make an answered message look unanswered.
    this.#readAnswered(message.id, stored, at);
    this.#d.obligations.markAnswered([message.id]);
    this.#d.obligations.markDirty();
  }

  /**
   * Marks `id` read once its answer (a reply or a failure reply) is stored. An answer the outbox
   * could not store (a full disk) leaves the message unread instead, so the next start delivers
   * it again: read without its answer, it would be lost.
   */
  #readAnswered(id: number, answer: EnqueueResult | undefined, at: number): void {
    if (answer !== undefined) {
      this.markRead(id, at);
      return;
    }
    log.error(
      `the answer to message #${id} could not be stored: the message stays unread on the relay, ` +
        `and the next start delivers it again`,
    );
    this.#d.inbox.leaveUnread(id);
  }

  /** Sends the held replies whose peer is under its rate again; checks every 5 s while any wait. */
  #releaseSoon(): void {
    if (this.#releaseTimer !== undefined || this.#d.stopping()) return;
    this.#releaseTimer = this.#d.clock.setTimeout(() => {
      this.#releaseTimer = undefined;
      const held = this.#held;
      this.#held = [];
      for (const h of held) {
        const writtenAt = Date.parse(h.message.createdAt);
        if (this.#guard.check(h.message.from, writtenAt) === "send") {
          this.#reply(h.message, h.text, h.at);
        } else this.#held.push(h);
      }
      if (this.#held.length > 0) this.#releaseSoon();
    }, POLL_RETRY_MS);
  }

  /**
   * The turn ended. A good one settles its tasks and marks its messages read (a message it did
   * not answer too); a failed one is retried or fails for good, see {@linkcode Delivery.failTurn}.
   */
  endTurn(ok: boolean, error?: string): void {
    if (!ok) {
      this.failTurn(error ?? "the turn failed", { cause: "turn" });
      return;
    }
    this.#retries = 0;
    this.#interrupted = false;
    this.#settle(this.#d.inbox.endTurn());
    if (this.#d.inbox.wantsMore) this.pollSoon(1_000);
    this.drainSoon(0);
  }

  /**
   * Messages done with: their tasks are done, and they are marked read (a reply's held message
   * waits for its reply). Read once the turn is over: a runner stopped mid-turn leaves them
   * unread, so the next start delivers them again.
   */
  #settle(messages: readonly Message[]): void {
    for (const message of messages) {
      this.#d.events.task(message, "done");
      const held = this.#held.some((h) => h.message.id === message.id);
      if (!this.#d.stopping() && !held) this.markRead(message.id, this.#d.clock.now());
    }
  }

  /** The operator interrupted the turn: when it ends, it fails for good. */
  interrupt(): void {
    if (this.#d.inbox.turn.phase !== "idle") this.#interrupted = true;
  }

  /**
   * The turn failed: a failed turn (`turn`), the provider died (`crash`), or the runner restarted
   * it (`restart`, which costs no try). Each unanswered message is tried again after a backoff
   * while it has tries left, else it is answered with a failure reply. An interrupted turn fails
   * for good at once. A runner that is stopping leaves them unread for the next start.
   */
  failTurn(reason: string, options: { cause: "turn" | "crash" | "restart" }): void {
    if (this.#d.stopping()) {
      this.#d.inbox.failTurn({ retry: true, free: true });
      return;
    }
    const interrupted = this.#interrupted;
    this.#interrupted = false;
    const why = interrupted ? "the turn was interrupted by an operator" : reason;
    const { retry, failed, answered } = this.#d.inbox.failTurn({
      retry: !interrupted,
      free: options.cause === "restart",
    });
    this.#settle(answered);
    if (retry.length > 0) {
      this.#retries++;
      const delay = options.cause === "restart"
        ? 0
        : backoffDelay(this.#retries, this.#d.retryBackoff ?? TURN_RETRY_BACKOFF);
      this.#holdUntil = this.#d.clock.now() + delay;
      log.warn(
        `turn failed (${why}): ${retry.length} message(s) will be delivered again in ${delay} ms`,
      );
    }
    const at = this.#d.clock.now();
    for (const message of failed) {
      log.warn(`message #${message.id} failed for good: ${why}`);
      const stored = this.#d.events.failureReply(message, why, at);
      this.#d.events.receipt(message.id, "failed", { at, detail: why });
      this.#d.events.task(message, "failed");
      this.#readAnswered(message.id, stored, at);
    }
    if (failed.length > 0) {
      this.#retries = 0;
      this.#d.obligations.markAnswered(failed.map((m) => m.id));
      this.#d.obligations.markDirty();
    }
    this.drainSoon(0);
  }

  /**
   * A blocked Stop: what the agent said so far answers the messages it was given, and the turn
   * goes on to answer the owed messages the block quoted in full, which count as delivered now
   * (and are mirrored as prompts, once). An owed message whose text the runner lacks is left for
   * normal delivery: a poll fetches it.
   */
  foldStop(
    said: string | undefined,
    owed: { quoted: readonly ReplyObligation[]; all: number },
  ): void {
    const now = this.#d.clock.now();
    if (said && said.trim() !== "") this.respond(said, now);
    const { folded, announce } = this.#d.inbox.foldIntoTurn(owed.quoted);
    for (const message of announce) this.#d.events.prompt(message, now);
    for (const message of folded) this.#d.events.receipt(message.id, "handed", { at: now });
    if (folded.length < owed.all) this.pollSoon(0);
  }

  /** Queues the mark-read of a message, once. */
  markRead(messageId: number, at: number): void {
    if (this.#d.inbox.claimMarkRead(messageId)) this.#d.events.markRead(messageId, at);
  }

  // --- Stop ---------------------------------------------------------------------------------

  /** Cancels the timers and the poll under way, and waits for it. */
  async stop(): Promise<void> {
    this.cancelTimers();
    this.#pollAbort?.abort();
    await this.#pollRunning?.catch(() => {});
  }

  /** Cancels the timers (nothing new starts). */
  cancelTimers(): void {
    const clock = this.#d.clock;
    for (
      const timer of [this.#drainTimer, this.#pollTimer, this.#fallbackTimer, this.#releaseTimer]
    ) {
      clock.clearTimeout(timer);
    }
    this.#fallbackTimer = undefined;
  }
}
