/**
 * The local reply-obligation snapshot: which relay messages the agent still owes a reply to.
 *
 * The Stop hook must answer at once, whatever the relay is doing, so it never asks the relay:
 * it reads this snapshot with the synchronous {@linkcode ReplyObligationCache.get}, which never
 * throws and never touches the network. {@linkcode ReplyObligationCache.refresh} is the only
 * caller of the relay: concurrent calls share one request, a failed or timed-out refresh keeps
 * the last snapshot (logged at debug, once per streak of the same error), a background interval
 * keeps the snapshot warm, and {@linkcode ReplyObligationCache.markDirty} asks for an extra
 * refresh a short while later when state just changed (a message arrived, a reply was posted).
 *
 * Two local facts are layered over the relay's answer, because the relay learns them late:
 * the bodies of messages the runner has seen ({@linkcode ReplyObligationCache.annotate}, so the
 * stop reason can quote them), and messages the runner has answered itself
 * ({@linkcode ReplyObligationCache.markAnswered}, hidden until the relay stops listing them).
 *
 * @module
 */
import { getLogger } from "../logger.ts";
import type { ReplyObligation } from "../types.ts";

const log = getLogger("obligations");

/** Fetches the agent's obligations from the relay; must honour `signal`. */
export type ReplyObligationFetch = (signal: AbortSignal) => Promise<ReplyObligation[]>;

/** The timer functions the cache uses (injected in tests). */
export interface CacheTimers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
  setInterval(callback: () => void, ms: number): unknown;
  clearInterval(id: unknown): void;
}

type TimerId = ReturnType<typeof setTimeout>;

/** Options of {@linkcode ReplyObligationCache}. */
export interface ReplyObligationCacheOptions {
  /** The only way the cache reaches the relay. */
  fetch: ReplyObligationFetch;
  /** Background refresh period. Default 10 s. */
  intervalMs?: number;
  /** How long after the first {@linkcode ReplyObligationCache.markDirty} the refresh runs. Default 400 ms. */
  debounceMs?: number;
  /** A refresh taking longer is aborted (the snapshot is kept). Default: `intervalMs`. */
  fetchTimeoutMs?: number;
  /** Epoch milliseconds now. Default `Date.now`. */
  now?: () => number;
  /** Default: the global timers. */
  timers?: CacheTimers;
}

/** The default background refresh period. */
export const DEFAULT_REFRESH_INTERVAL_MS = 10_000;
/** The default delay of a {@linkcode ReplyObligationCache.markDirty} refresh. */
export const DEFAULT_DIRTY_DEBOUNCE_MS = 400;
/** How many message bodies the cache remembers for quoting. */
export const MAX_ANNOTATIONS = 1_000;

const globalTimers: CacheTimers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (id) => clearTimeout(id as TimerId),
  setInterval: (callback, ms) => setInterval(callback, ms),
  clearInterval: (id) => clearInterval(id as TimerId),
};

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(`${name} ${value} is not a positive number of milliseconds`);
  }
  return value;
}

function messageText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Keeps only well-formed obligations, one per message id. */
function clean(list: unknown[]): ReplyObligation[] {
  const seen = new Set<number>();
  const out: ReplyObligation[] = [];
  for (const item of list) {
    if (typeof item !== "object" || item === null) continue;
    const o = item as Record<string, unknown>;
    const id = o["messageId"];
    if (typeof id !== "number" || !Number.isFinite(id) || seen.has(id)) continue;
    if (typeof o["from"] !== "string") continue;
    const createdAt = o["createdAt"];
    seen.add(id);
    const obligation: ReplyObligation = {
      messageId: id,
      from: o["from"],
      createdAt: typeof createdAt === "string" || typeof createdAt === "number" ? createdAt : "",
    };
    if (typeof o["body"] === "string") obligation.body = o["body"];
    out.push(obligation);
  }
  return out;
}

/** The agent's reply obligations, served from a local snapshot. */
export class ReplyObligationCache {
  readonly #fetch: ReplyObligationFetch;
  readonly #intervalMs: number;
  readonly #debounceMs: number;
  readonly #fetchTimeoutMs: number;
  readonly #now: () => number;
  readonly #timers: CacheTimers;
  readonly #realTimers: boolean;

  #snapshot: ReplyObligation[] = [];
  #refreshedAt: number | undefined;
  #lastError: string | undefined;
  #failures = 0;
  #inFlight: Promise<void> | undefined;
  #abort: AbortController | undefined;
  #fetchTimer: unknown;
  #rerun = false;
  #interval: unknown;
  #dirtyTimer: unknown;
  #stopped = false;
  /** Refresh generation: a refresh started after a mark can retire it. */
  #generation = 0;
  /** Message id -> generation at which it was marked answered locally. */
  readonly #answered = new Map<number, number>();
  /** Message id -> what the runner knows of it (insertion order = age). */
  readonly #annotations = new Map<number, { body: string; from?: string }>();

  constructor(options: ReplyObligationCacheOptions) {
    this.#fetch = options.fetch;
    this.#intervalMs = positive(options.intervalMs, DEFAULT_REFRESH_INTERVAL_MS, "intervalMs");
    this.#debounceMs = positive(options.debounceMs, DEFAULT_DIRTY_DEBOUNCE_MS, "debounceMs");
    this.#fetchTimeoutMs = positive(options.fetchTimeoutMs, this.#intervalMs, "fetchTimeoutMs");
    this.#now = options.now ?? Date.now;
    this.#timers = options.timers ?? globalTimers;
    this.#realTimers = options.timers === undefined;
  }

  /**
   * The current snapshot, oldest message first: a fresh copy, with known bodies filled in and
   * locally answered messages left out. Synchronous; never throws; never reaches the relay.
   */
  get(): ReplyObligation[] {
    const out: ReplyObligation[] = [];
    for (const o of this.#snapshot) {
      if (this.#answered.has(o.messageId)) continue;
      const note = this.#annotations.get(o.messageId);
      const copy: ReplyObligation = { ...o };
      if (copy.body === undefined && note) copy.body = note.body;
      out.push(copy);
    }
    return out;
  }

  /** Epoch milliseconds of the last successful refresh; `undefined` before the first. */
  get refreshedAt(): number | undefined {
    return this.#refreshedAt;
  }

  /** Milliseconds since the last successful refresh; `undefined` before the first. */
  ageMs(): number | undefined {
    return this.#refreshedAt === undefined
      ? undefined
      : Math.max(0, this.#now() - this.#refreshedAt);
  }

  /** Why the last refresh failed, while the failures last; `undefined` after a success. */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  /** Whether a refresh is running now. */
  get refreshing(): boolean {
    return this.#inFlight !== undefined;
  }

  /** Starts the background interval and a first refresh. Idempotent. */
  start(): void {
    if (this.#stopped || this.#interval !== undefined) return;
    void this.refresh();
    this.#interval = this.#timers.setInterval(() => void this.refresh(), this.#intervalMs);
    // Never keep the process alive just for refreshes.
    if (this.#realTimers) (this.#interval as { unref?: () => void }).unref?.();
  }

  /** Stops the interval and any pending or running refresh. The snapshot stays readable. */
  stop(): void {
    this.#stopped = true;
    if (this.#interval !== undefined) this.#timers.clearInterval(this.#interval);
    if (this.#dirtyTimer !== undefined) this.#timers.clearTimeout(this.#dirtyTimer);
    this.#interval = undefined;
    this.#dirtyTimer = undefined;
    this.#rerun = false;
    if (this.#fetchTimer !== undefined) this.#timers.clearTimeout(this.#fetchTimer);
    this.#fetchTimer = undefined;
    this.#abort?.abort(new Error("the obligation cache was stopped"));
  }

  /**
   * Asks for a refresh `debounceMs` from the first call of a burst (later calls in the window
   * join it). If a refresh is running when it fires, one more runs after it, so a change made
   * while a request was in flight is never missed.
   */
  markDirty(): void {
    if (this.#stopped || this.#dirtyTimer !== undefined) return;
    this.#dirtyTimer = this.#timers.setTimeout(() => {
      this.#dirtyTimer = undefined;
      if (this.#inFlight) this.#rerun = true;
      else void this.refresh();
    }, this.#debounceMs);
  }

  /**
   * Fetches the obligations from the relay and replaces the snapshot. Concurrent calls share
   * one request. Never rejects: on failure the last snapshot stays.
   */
  refresh(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    if (this.#inFlight) return this.#inFlight;
    const run = this.#run().finally(() => {
      this.#inFlight = undefined;
      if (this.#rerun && !this.#stopped) {
        this.#rerun = false;
        void this.refresh();
      }
    });
    this.#inFlight = run;
    return run;
  }

  /** Remembers a message's text (and sender), so a stop reason can quote it. */
  annotate(message: { id: number; body: string; from?: string }): void {
    this.#annotations.delete(message.id);
    const note: { body: string; from?: string } = { body: message.body };
    if (message.from !== undefined) note.from = message.from;
    this.#annotations.set(message.id, note);
    if (this.#annotations.size > MAX_ANNOTATIONS) {
      const oldest = this.#annotations.keys().next();
      if (!oldest.done) this.#annotations.delete(oldest.value);
    }
  }

  /** The remembered text of a message, if any. */
  bodyOf(messageId: number): string | undefined {
    return this.#annotations.get(messageId)?.body;
  }

  /**
   * Marks messages as answered by the runner (a reply with `replyTo` was queued). They leave
   * {@linkcode get} at once, and are forgotten when a refresh that started after this call
   * no longer lists them.
   */
  markAnswered(messageIds: Iterable<number>): void {
    for (const id of messageIds) this.#answered.set(id, this.#generation);
  }

  async #run(): Promise<void> {
    const generation = ++this.#generation;
    const abort = new AbortController();
    this.#abort = abort;
    const timer = this.#timers.setTimeout(
      () => abort.abort(new Error(`no answer within ${this.#fetchTimeoutMs} ms`)),
      this.#fetchTimeoutMs,
    );
    this.#fetchTimer = timer;
    try {
      const result = await new Promise<unknown>((resolve, reject) => {
        abort.signal.addEventListener("abort", () => reject(abort.signal.reason), { once: true });
        this.#fetch(abort.signal).then(resolve, reject);
      });
      if (this.#stopped) return;
      if (!Array.isArray(result)) {
        throw new TypeError(`the relay's obligation list is ${typeof result}, not an array`);
      }
      this.#snapshot = clean(result);
      this.#refreshedAt = this.#now();
      const listed = new Set(this.#snapshot.map((o) => o.messageId));
      for (const [id, markedAt] of this.#answered) {
        if (markedAt < generation && !listed.has(id)) this.#answered.delete(id);
      }
      if (this.#failures > 0) {
        log.debug(`obligation refresh recovered after ${this.#failures} failed attempts`);
      }
      this.#failures = 0;
      this.#lastError = undefined;
    } catch (error) {
      if (this.#stopped) return;
      const text = messageText(error);
      this.#failures++;
      if (text !== this.#lastError) {
        const age = this.ageMs();
        log.debug(
          `obligation refresh failed, serving the last snapshot (${this.#snapshot.length} ` +
            `obligations, ${age === undefined ? "never refreshed" : `${age} ms old`}): ${text}`,
        );
      }
      this.#lastError = text;
    } finally {
      if (this.#fetchTimer === timer) {
        this.#timers.clearTimeout(timer);
        this.#fetchTimer = undefined;
      }
      if (this.#abort === abort) this.#abort = undefined;
    }
  }
}
