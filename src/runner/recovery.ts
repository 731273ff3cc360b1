/**
 * Recovery: while the relay is away (the outbox backing off, or the bus down), probe it cheaply
 * (`GET /health`, every 250 to 375 ms, one probe at a time) and, the moment it answers after a
 * probe found it unreachable, wake the outbox and the bus instead of letting them wait out their
 * backoff. A relay that answers the probe but fails the calls (a 500, say) is left to the
 * outbox's own backoff: waking on every probe would defeat it. The probing stops once the relay
 * answers, so a relay that comes back sees at most four cheap requests a second from each runner
 * until then.
 *
 * @module
 */
import { type Clock, type TimerId } from "../util/mod.ts";

/** The probe interval's floor and its jitter. */
export const PROBE_EVERY_MS = 250;
const PROBE_JITTER_MS = 125;

/** What recovery needs. */
export interface RecoveryDeps {
  clock: Clock;
  /** True when the relay answers at all (any HTTP status). */
  probe(options: { signal: AbortSignal }): Promise<boolean>;
  /** Whether something waits for the relay (the outbox backing off, the bus down). */
  waiting(): boolean;
  /** The relay answers again: wake what waits. */
  wake(): void;
  random?: () => number;
}

/** The probe loop: `check()` whenever something may have started waiting; `stop()` at the end. */
export class Recovery {
  readonly #d: RecoveryDeps;
  #timer: TimerId | undefined;
  #abort: AbortController | undefined;
  #stopped = false;
  /** A probe found the relay unreachable since the last wake. */
  #wasDown = false;

  constructor(deps: RecoveryDeps) {
    this.#d = deps;
  }

  /** Starts probing if something waits for the relay and no probe is scheduled. */
  check(): void {
    if (this.#stopped || this.#timer !== undefined || this.#abort || !this.#d.waiting()) return;
    const jitter = Math.floor((this.#d.random ?? Math.random)() * PROBE_JITTER_MS);
    this.#timer = this.#d.clock.setTimeout(() => {
      this.#timer = undefined;
      void this.#probe();
    }, PROBE_EVERY_MS + jitter);
  }

  async #probe(): Promise<void> {
    if (this.#stopped || !this.#d.waiting()) return;
    const abort = new AbortController();
    this.#abort = abort;
    let back = false;
    try {
      back = await this.#d.probe({ signal: abort.signal });
    } finally {
      this.#abort = undefined;
    }
    if (this.#stopped) return;
    if (!back) {
      this.#wasDown = true;
      this.check();
    } else if (this.#wasDown) {
      this.#wasDown = false;
      this.#d.wake();
    }
  }

  /** Stops probing for good. */
  stop(): void {
    this.#stopped = true;
    this.#d.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#abort?.abort();
  }
}
