/**
 * The runner's liveness heartbeat: `POST /api/agents/:id/heartbeat` on an interval.
 *
 * A failing relay is logged once per distinct error (a warning), not once per attempt, and
 * once more (an info) when the heartbeat gets through again. The next beat is scheduled only
 * after the previous one settled, so a slow relay never piles up requests.
 *
 * @module
 */
import { getLogger, type Logger } from "../logger.ts";
import type { HeartbeatInput } from "../types.ts";
import { type Clock, errorText, systemClock, type TimerId } from "../util/mod.ts";
import { RelayError } from "./errors.ts";
import type { CallOptions } from "./http_client.ts";

/** The part of the HTTP client the heartbeat uses. */
export interface HeartbeatClient {
  heartbeat(agentId: string, input: HeartbeatInput, options?: CallOptions): Promise<void>;
}

/** Options of {@linkcode Heartbeat}. */
export interface HeartbeatOptions {
  client: HeartbeatClient;
  agentId: string;
  /** The body to send, read at each beat (the status changes). */
  info: () => HeartbeatInput;
  /** Milliseconds between beats. Default 30 000. */
  intervalMs?: number;
  /** The timer between beats. Default the system clock. */
  clock?: Clock;
  /** Where warnings and recoveries go. Default: the `heartbeat` logger. */
  logger?: Pick<Logger, "debug" | "info" | "warn">;
}

/** The heartbeat loop. */
export class Heartbeat {
  #options: HeartbeatOptions;
  #log: Pick<Logger, "debug" | "info" | "warn">;
  #clock: Clock;
  #timer: TimerId | undefined;
  #running = false;
  #inflight: Promise<boolean> | undefined;
  #abort: AbortController | undefined;
  #lastError: string | undefined;
  #failures = 0;

  constructor(options: HeartbeatOptions) {
    this.#options = options;
    this.#log = options.logger ?? getLogger("heartbeat");
    this.#clock = options.clock ?? systemClock;
  }

  /** Consecutive failed beats so far (0 when the last one got through). */
  get failures(): number {
    return this.#failures;
  }

  /** Sends a beat now, then one every interval until {@linkcode stop}. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#abort = new AbortController();
    this.#tick();
  }

  /** Stops the loop and cancels a beat in flight; resolves once it settled. */
  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#abort?.abort();
    this.#abort = undefined;
    await this.#inflight;
  }

  /**
   * Sends one beat (also when the loop is stopped); resolves `true` when the relay took it.
   * Never throws.
   */
  beat(): Promise<boolean> {
    if (this.#inflight) return this.#inflight;
    const inflight = this.#beat().finally(() => {
      if (this.#inflight === inflight) this.#inflight = undefined;
    });
    this.#inflight = inflight;
    return inflight;
  }

  #tick(): void {
    void this.beat().then(() => {
      if (!this.#running) return;
      this.#timer = this.#clock.setTimeout(() => {
        this.#timer = undefined;
        if (this.#running) this.#tick();
      }, this.#options.intervalMs ?? 30_000);
    });
  }

  async #beat(): Promise<boolean> {
    const signal = this.#abort?.signal;
    try {
      await this.#options.client.heartbeat(
        this.#options.agentId,
        this.#options.info(),
        signal ? { signal } : {},
      );
    } catch (error) {
      if (signal?.aborted) return false;
      this.#failures++;
      const key = errorKey(error);
      if (key !== this.#lastError) {
        this.#lastError = key;
        this.#log.warn(
          `heartbeat failed: ${errorText(error)}` +
            " (further identical failures are not logged)",
        );
      } else {
        this.#log.debug(`heartbeat failed again (${this.#failures} in a row)`);
      }
      return false;
    }
    if (this.#lastError !== undefined) {
      this.#log.info(`heartbeat recovered after ${this.#failures} failed attempts`);
    }
    this.#lastError = undefined;
    this.#failures = 0;
    return true;
  }
}

/**
 * What makes two failures "the same error" (a dedup key, not display text): the kind and HTTP
 * status, or else the kind (or error name) and the message.
 */
function errorKey(error: unknown): string {
  if (error instanceof RelayError) {
    return error.status !== undefined
      ? `${error.kind}:${error.status}`
      : `${error.kind}:${error.message}`;
  }
  return error instanceof Error ? `${error.name}:${error.message}` : String(error);
}
