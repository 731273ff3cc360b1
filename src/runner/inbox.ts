/**
 * The inbox and the current turn, as one synchronous state machine with no I/O: which relay
 * messages wait for the provider, in what order, which were handed over, which the turn answers,
 * and whether an unread poll is under way.
 *
 * The runner feeds it events (a message pushed or polled, a poll's page, a hand-over's outcome,
 * a response, the turn's end, a provider crash, a blocked Stop) and does the I/O it asks for. Its
 * rules:
 *
 * - Messages wait in relay order (ids grow with time), deduplicated by id, whether pushed or
 *   polled; only `chat` messages to this agent are kept.
 * - Nothing is handed over while a poll runs, while a turn is open, or while the inbox is behind
 *   (at start and after a bus reconnect, until a catch-up poll has succeeded): a poll may return an
 *   older message, which must not be overtaken by one pushed meanwhile.
 * - A hand-over voided by a crash or restart (the turn's epoch moved on) leaves its messages
 *   waiting; a crashed turn's unanswered messages go back to the front of the queue.
 * - A turn that fails is retried up to `turnRetries` times, then fails for good: every message
 *   ends answered or failed, exactly once.
 *
 * @module
 */
import type { Message, ReplyObligation } from "../types.ts";
import { BoundedIds } from "./bounded_ids.ts";

/** The turn: none, being handed to the provider, or open (the provider works on it). */
export type TurnState =
  | { phase: "idle" }
  | {
    phase: "handing";
    /** The messages being written to the provider. */
    batch: Message[];
    /** The epoch the hand-over began in: a crash or restart meanwhile voids it. */
    epoch: number;
    /** The messages the turn answers (emptied when the turn ends or fails meanwhile). */
    turn: Message[];
  }
  | { phase: "open"; turn: Message[] };

/** The unread poll: none, or one under way (`again`: another was asked for meanwhile). */
export type PollState = { phase: "idle" } | { phase: "running"; again: boolean };

/**
 * Whether the inbox has caught up with the relay: `behind` at start and after every bus
 * reconnect (pushed messages are held), `caught-up` once a catch-up poll has succeeded.
 */
export type SyncState = "behind" | "caught-up";

/** What a failed turn does to its messages. */
export interface TurnFailure {
  /** Back at the front of the queue, for another try. */
  retry: Message[];
  /** Failed for good: owed a failure reply. */
  failed: Message[];
  /** Answered before the turn failed: done with, as after a good turn. */
  answered: Message[];
}

/** What a poll's page changed. */
export interface PageOutcome {
  /** Messages new to the queue. */
  fresh: Message[];
  /** Messages to this agent that are not `chat`: never delivered, to be marked read. */
  notChat: number[];
}

/** The most messages handed over in one turn. */
export const MAX_BATCH = 20;

/** One agent's inbox and turn. */
export class Inbox {
  readonly #agentId: string;
  /** Waiting for the provider, in relay id order. */
  #pending = new Map<number, Message>();
  /** Handed to the provider, so never delivered twice. */
  readonly #delivered = new BoundedIds();
  /** Mirrored as prompts (and task-claimed), once each. */
  readonly #announced = new BoundedIds();
  /** Mark-read queued, once each. */
  readonly #markedRead = new BoundedIds();
  /** Answered with a reply, once each. */
  readonly #replied = new BoundedIds();
  #turn: TurnState = { phase: "idle" };
  #poll: PollState = { phase: "idle" };
  /** Bumped when a turn is given up: a hand-over under way then is void. */
  #epoch = 0;
  /** The last page came back full: more may wait on the relay. */
  #pageFull = false;
  #sync: SyncState = "behind";
  /** Bumped by every fall behind: only a poll begun after the last one can catch up. */
  #syncGeneration = 0;
  /** The generation the running poll began in. */
  #pollGeneration = 0;
  /** Failed tries per message id (bounded by the messages that wait or run). */
  readonly #failures = new Map<number, number>();
  readonly #turnRetries: number;

  constructor(agentId: string, options: { turnRetries?: number } = {}) {
    this.#agentId = agentId;
    this.#turnRetries = options.turnRetries ?? 1;
  }

  /** Whether the inbox has caught up with the relay. */
  get sync(): SyncState {
    return this.#sync;
  }

  /** The bus (re)connected: hold pushed messages until a catch-up poll succeeds. */
  fallBehind(): void {
    this.#sync = "behind";
    this.#syncGeneration++;
  }

  /** The turn's state. */
  get turn(): Readonly<TurnState> {
    return this.#turn;
  }

  /** The poll's state. */
  get poll(): Readonly<PollState> {
    return this.#poll;
  }

  /** The messages of the current turn (none when idle). */
  get turnMessages(): readonly Message[] {
    return this.#turn.phase === "idle" ? [] : this.#turn.turn;
  }

  /** How many messages wait. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** The waiting messages' ids, in order. */
  get pendingIds(): number[] {
    return [...this.#pending.keys()];
  }

  /** Whether the last page was full and nothing waits: time to poll for the rest. */
  get wantsMore(): boolean {
    return this.#pageFull && this.#pending.size === 0;
  }

  // --- Arrivals ---------------------------------------------------------------------------

  /** A message pushed or polled. Returns true when it joined the queue. */
  receive(message: Message): boolean {
    if (message.kind !== "chat" || message.to !== this.#agentId) return false;
    if (this.#delivered.has(message.id) || this.#pending.has(message.id)) return false;
    const last = [...this.#pending.keys()].at(-1);
    this.#pending.set(message.id, message);
    if (last !== undefined && message.id < last) this.#sortPending();
    return true;
  }

  /** A poll starts; false when one runs already (it is then run again after this one). */
  beginPoll(): boolean {
    if (this.#poll.phase === "running") {
      this.#poll = { phase: "running", again: true };
      return false;
    }
    this.#poll = { phase: "running", again: false };
    this.#pollGeneration = this.#syncGeneration;
    return true;
  }

  /** A poll's page arrived. */
  acceptPage(page: readonly Message[], options: { limit: number }): PageOutcome {
    const notChat: number[] = [];
    const fresh: Message[] = [];
    for (const message of page) {
      if (message.to === this.#agentId && message.kind !== "chat") notChat.push(message.id);
      else if (this.receive(message)) fresh.push(message);
    }
    this.#pageFull = page.length >= options.limit;
    return { fresh, notChat };
  }

  /**
   * The poll ended: `caughtUp` when it read every page. Only a poll that began after the last
   * fall behind catches up (one begun before a reconnect may have missed what the bus did not
   * push meanwhile). Returns true when another was asked for meanwhile.
   */
  endPoll(options: { caughtUp: boolean }): boolean {
    const again = this.#poll.phase === "running" && this.#poll.again;
    this.#poll = { phase: "idle" };
    if (options.caughtUp && this.#pollGeneration === this.#syncGeneration) {
      this.#sync = "caught-up";
    }
    return again;
  }

  // --- Hand-over --------------------------------------------------------------------------

  /**
   * Opens a turn with the next messages, when nothing blocks it (no poll, no turn, something
   * waiting). Returns the batch and the messages of it not yet announced (announced now).
   */
  beginHandOver(): { batch: Message[]; announce: Message[] } | undefined {
    if (
      this.#poll.phase === "running" || this.#sync === "behind" || this.#turn.phase !== "idle" ||
      this.#pending.size === 0
    ) return undefined;
    const batch = [...this.#pending.values()].slice(0, MAX_BATCH);
    this.#turn = { phase: "handing", batch, epoch: this.#epoch, turn: [...batch] };
    return { batch, announce: batch.filter((m) => this.#announced.add(m.id)) };
  }

  /**
   * The hand-over finished. Returns false when it was voided meanwhile (a crash or restart):
   * then nothing was delivered and the messages still wait.
   */
  handOverDone(): boolean {
    const t = this.#turn;
    if (t.phase !== "handing") return false;
    if (t.epoch !== this.#epoch) {
      this.#turn = { phase: "idle" };
      return false;
    }
    for (const message of t.batch) {
      this.#pending.delete(message.id);
      this.#delivered.add(message.id);
    }
    // The turn may have ended (or failed) while the hand-over was under way.
    this.#turn = t.turn.length > 0 ? { phase: "open", turn: t.turn } : { phase: "idle" };
    return true;
  }

  /** The hand-over failed: the messages stay waiting, the turn closes. */
  handOverFailed(): void {
    if (this.#turn.phase === "handing") this.#turn = { phase: "idle" };
  }

  // --- The turn ---------------------------------------------------------------------------

  /**
   * A response: the turn's messages it answers (`replyTo`, or every unanswered one), each
   * answered once. An empty result means it answers nothing (mirror only).
   */
  answer(replyTo?: number): Message[] {
    const targets = this.turnMessages.filter((m) =>
      (replyTo === undefined || m.id === replyTo) && !this.#replied.has(m.id)
    );
    for (const message of targets) this.#replied.add(message.id);
    return targets;
  }

  /** Whether `id` was answered by this runner. */
  answered(id: number): boolean {
    return this.#replied.has(id);
  }

  /** The turn ended well: its messages, now done with. */
  endTurn(): Message[] {
    const t = this.#turn;
    if (t.phase === "idle") return [];
    const done = t.turn;
    for (const message of done) this.#failures.delete(message.id);
    this.#turn = t.phase === "handing" ? { ...t, turn: [] } : { phase: "idle" };
    return done;
  }

  /**
   * The turn failed (a failed turn, the provider died, a restart, an interrupt): a hand-over
   * under way is void, and each unanswered message goes back to the front of the queue while it
   * has tries left (`retry: false`: none left, as after an operator's interrupt), else fails for
   * good. A restart the runner asked for costs no try (`free`).
   */
  failTurn(options: { retry: boolean; free?: boolean }): TurnFailure {
    this.#epoch++;
    const t = this.#turn;
    const outcome: TurnFailure = { retry: [], failed: [], answered: [] };
    if (t.phase === "idle") return outcome;
    for (const message of t.turn.filter((m) => this.#replied.has(m.id))) {
      // Answered during a hand-over the crash voids: never handed over again.
      this.#pending.delete(message.id);
      this.#delivered.add(message.id);
      this.#failures.delete(message.id);
      outcome.answered.push(message);
    }
    for (const message of t.turn.filter((m) => !this.#replied.has(m.id))) {
      const failures = (this.#failures.get(message.id) ?? 0) + (options.free ? 0 : 1);
      if (options.retry && failures <= this.#turnRetries) {
        this.#failures.set(message.id, failures);
        this.#delivered.delete(message.id);
        this.#pending.set(message.id, message);
        outcome.retry.push(message);
      } else {
        this.#failures.delete(message.id);
        this.#pending.delete(message.id);
        this.#delivered.add(message.id);
        this.#replied.add(message.id);
        outcome.failed.push(message);
      }
    }
    this.#sortPending();
    this.#turn = t.phase === "handing" ? { ...t, turn: [] } : { phase: "idle" };
    return outcome;
  }

  /**
   * A blocked Stop: the owed messages the block quoted in full join the turn (as delivered), so
   * its answer reaches them. The rest are left for normal delivery. Returns the folded messages
   * and which of them still need their prompt mirrored.
   */
  foldIntoTurn(quoted: readonly ReplyObligation[]): { folded: Message[]; announce: Message[] } {
    const turn = [...this.turnMessages];
    const folded: Message[] = [];
    const announce: Message[] = [];
    for (const o of quoted) {
      if (o.body === undefined || turn.some((m) => m.id === o.messageId)) continue;
      if (this.#replied.has(o.messageId)) continue;
      const message: Message = this.#pending.get(o.messageId) ?? {
        id: o.messageId,
        from: o.from,
        to: this.#agentId,
        kind: "chat",
        body: o.body,
        createdAt: String(o.createdAt),
      };
      turn.push(message);
      folded.push(message);
      this.#pending.delete(message.id);
      this.#delivered.add(message.id);
      if (this.#announced.add(message.id)) announce.push(message);
    }
    const t = this.#turn;
    this.#turn = t.phase === "handing"
      ? { ...t, turn }
      : turn.length > 0
      ? { phase: "open", turn }
      : { phase: "idle" };
    return { folded, announce };
  }

  // --- Bookkeeping ------------------------------------------------------------------------

  /**
   * A message that will never be delivered (too large to read): settled as answered. Returns
   * false when it was settled already.
   */
  refuse(id: number): boolean {
    if (this.#replied.has(id)) return false;
    this.#pending.delete(id);
    this.#delivered.add(id);
    this.#replied.add(id);
    return true;
  }

  /**
   * `id` stays unread on the relay for the rest of this run (its answer could not be stored):
   * no mark-read is queued for it, so the next start delivers it again.
   */
  leaveUnread(id: number): void {
    this.#markedRead.add(id);
  }

  /** Whether the mark-read of `id` is still to be queued (true once per id). */
  claimMarkRead(id: number): boolean {
    return this.#markedRead.add(id);
  }

  /**
   * After a crash: what the outbox still holds from the last run. A queued mark-read means the
   * message was delivered; a queued reply that it was answered. Neither is delivered again.
   */
  recall(queued: { markedRead: readonly number[]; answered: readonly number[] }): void {
    for (const id of queued.markedRead) {
      this.#delivered.add(id);
      this.#markedRead.add(id);
    }
    for (const id of queued.answered) {
      this.#delivered.add(id);
      this.#replied.add(id);
    }
  }

  #sortPending(): void {
    this.#pending = new Map([...this.#pending].sort(([a], [b]) => a - b));
  }
}
