/**
 * The pump's retry schedule: consecutive failures, when the head is next due (capped, jittered
 * backoff from src/util/backoff.ts), and `wake()`, which makes it due at once, even when the
 * wake comes during a send that then fails.
 *
 * @module
 */
import { getLogger } from "../logger.ts";
import { backoffDelay, type BackoffOptions } from "../util/mod.ts";

const log = getLogger("outbox");

/** Options of {@linkcode RetrySchedule}. */
export interface RetryOptions {
  backoff: BackoffOptions;
  /** Jitter source, in [0, 1). */
  random: () => number;
}

/** When the head of the queue is next tried. */
export class RetrySchedule {
  readonly #backoff: BackoffOptions;
  readonly #random: () => number;
  #failures = 0;
  #failingSince: number | undefined;
  /** Epoch ms; 0 when not backing off. */
  #nextAttemptAt = 0;
  #wokenDuringSend = false;

  constructor(options: RetryOptions) {
    this.#backoff = options.backoff;
    this.#random = options.random;
  }

  /** Failures since the last delivery. */
  get failures(): number {
    return this.#failures;
  }

  /** When the head is next tried while backing off; 0 when it is due now. */
  get nextAttemptAt(): number {
    return this.#nextAttemptAt;
  }

  /** A send starts: a wake from now on is a wake during it. */
  sending(): void {
    this.#wokenDuringSend = false;
  }

  /** Makes the head due now; `sending` says a send is in flight (so its failure retries at once). */
  wake(sending: boolean): void {
    this.#nextAttemptAt = 0;
    if (sending) this.#wokenDuringSend = true;
  }

  /** A delivery made progress: the backoff resets. `pending` is for the log line. */
  progressed(now: number, pending: number): void {
    if (this.#failures > 0) {
      const since = this.#failingSince === undefined ? 0 : now - this.#failingSince;
      log.info(
        `Outbox delivering again after ${this.#failures} failed attempt(s) over ` +
          `${Math.round(since)} ms; ${pending} pending`,
      );
    }
    this.#failures = 0;
    this.#failingSince = undefined;
    this.#nextAttemptAt = 0;
  }

  /** A transient failure (`text`) at `now`: back off, or retry at once if woken during the send. */
  failed(now: number, text: string): void {
    this.#failures++;
    this.#failingSince ??= now;
    if (this.#wokenDuringSend) {
      this.#wokenDuringSend = false;
      this.#nextAttemptAt = 0;
      log.debug(`Outbox send failed (${text}); woken meanwhile, retrying now`);
      return;
    }
    const delay = backoffDelay(this.#failures, this.#backoff, this.#random);
    this.#nextAttemptAt = now + delay;
    const message = `Outbox send failed (attempt ${this.#failures} since the last ` +
      `delivery), retrying in ${delay} ms: ${text}`;
    if (this.#failures === 1) log.warn(message);
    else log.debug(message);
  }
}
