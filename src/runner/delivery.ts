/**
 * Delivery: the I/O around the {@linkcode Inbox}. It polls the relay for unread messages (at
 * start, after every bus reconnect, every 5 s while the bus is down, and until a poll succeeds),
 * hands batches to the provider when it is ready, mirrors each prompt once, answers the turn's
 * messages with its responses, and marks each message read once: with its reply, or at the end
 * of its turn.
 *
 * @module
 */
import type { ProviderAdapter } from "../adapters/mod.ts";
import { getLogger } from "../logger.ts";
import type { Message, ReplyObligation } from "../types.ts";
import { type Clock, errorText, type TimerId } from "../util/mod.ts";
import type { EventQueue } from "./event_queue.ts";
import type { Inbox } from "./inbox.ts";
import type { ReplyObligationCache } from "./reply_obligations.ts";

const log = getLogger("runner");

/** The page size of an unread poll. */
export const POLL_LIMIT = 100;
/** How long after a failed poll, or a full page of nothing new, the next one runs. */
export const POLL_RETRY_MS = 5_000;

/** What delivery needs from the runner. */
export interface DeliveryDeps {
  inbox: Inbox;
  events: EventQueue;
  clock: Clock;
  obligations: Pick<ReplyObligationCache, "annotate" | "markDirty" | "markAnswered">;
  /** One page of unread messages from the relay. */
  poll(options: { limit: number; signal: AbortSignal }): Promise<Message[]>;
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

  constructor(deps: DeliveryDeps) {
    this.#d = deps;
  }

  /** When messages were last handed over (epoch ms). */
  get lastDeliveryAt(): number | undefined {
    return this.#lastDeliveryAt;
  }

  // --- In -----------------------------------------------------------------------------------

  /** A message pushed on the bus (or polled). */
  receive(message: Message): void {
    if (!this.#d.inbox.receive(message)) return;
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
    try {
      const page = await this.#d.poll({ limit: POLL_LIMIT, signal: abort.signal });
      if (this.#d.stopping()) return;
      this.#d.onPollSuccess();
      const outcome = this.#d.inbox.acceptPage(page, { limit: POLL_LIMIT });
      // Never delivered: marked read so they cannot fill every page of the inbox.
      for (const id of outcome.notChat) this.markRead(id, this.#d.clock.now());
      for (const m of outcome.fresh) {
        this.#d.obligations.annotate({ id: m.id, body: m.body, from: m.from });
      }
      if (outcome.fresh.length > 0) this.#d.obligations.markDirty();
      // A full page may hide more: poll again once this lot is answered, or soon if nothing on
      // the page was new.
      if (page.length >= POLL_LIMIT && outcome.fresh.length === 0) this.pollSoon(POLL_RETRY_MS);
      log.info(`inbox poll: ${page.length} unread message(s), ${outcome.fresh.length} new`);
    } catch (error) {
      if (this.#d.stopping()) return;
      log.warn(`inbox poll failed (${errorText(error)}); retrying in 5 s`);
      this.pollSoon(POLL_RETRY_MS);
    } finally {
      this.#pollAbort = undefined;
      if (this.#d.inbox.endPoll()) this.pollSoon(0);
      this.drainSoon(0);
    }
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
    const opened = this.#d.inbox.beginHandOver();
    if (!opened) return;
    const { batch, announce } = opened;
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
    this.#d.onDelivered(batch.length);
    log.info(`delivered message(s) ${batch.map((m) => `#${m.id}`).join(", ")}`);
    this.#d.onHandingChange();
    // The turn may have ended (or failed) while the hand-over was under way.
    if (this.#d.inbox.turn.phase === "idle") this.drainSoon(0);
  }

  // --- The turn -----------------------------------------------------------------------------

  /** A response: answers the turn's messages (once each), or goes to the mirror only. */
  respond(text: string, at: number, replyTo?: number): void {
    const answered = this.#d.inbox.answer(replyTo);
    if (answered.length === 0) {
      this.#d.events.mirror("response", text, { at });
      return;
    }
    for (const message of answered) {
      this.#d.events.reply(message, text, at);
      // Read together with its answer, not at the end of the turn: a kill later in the turn
      // must not make an answered message look unanswered.
      this.markRead(message.id, at);
    }
    this.#d.obligations.markAnswered(answered.map((m) => m.id));
    this.#d.obligations.markDirty();
  }

  /** The turn ended: its tasks are settled and its messages marked read. */
  endTurn(ok: boolean): void {
    for (const message of this.#d.inbox.endTurn()) {
      this.#d.events.task(message, ok ? "done" : "failed");
      // Read once the turn is over: a runner stopped mid-turn leaves the message unread, so the
      // next start delivers it again.
      if (!this.#d.stopping()) this.markRead(message.id, this.#d.clock.now());
    }
    if (this.#d.inbox.wantsMore) this.pollSoon(1_000);
    this.drainSoon(0);
  }

  /** The provider died or is restarted mid-turn: the turn's messages are delivered again. */
  failTurn(reason: string): void {
    const count = this.#d.inbox.failTurn();
    if (count > 0) {
      log.warn(`turn interrupted (${reason}): ${count} message(s) will be delivered again`);
    }
  }

  /**
   * A blocked Stop: what the agent said so far answers the messages it was given, and the turn
   * goes on to answer the owed ones, which count as delivered now.
   */
  foldStop(said: string | undefined, owed: readonly ReplyObligation[]): void {
    if (said && said.trim() !== "") this.respond(said, this.#d.clock.now());
    this.#d.inbox.foldIntoTurn(owed);
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
    for (const timer of [this.#drainTimer, this.#pollTimer, this.#fallbackTimer]) {
      clock.clearTimeout(timer);
    }
    this.#fallbackTimer = undefined;
  }
}
