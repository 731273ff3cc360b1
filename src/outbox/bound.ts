/**
 * The queue's bound: which rows go when the outbox is full (poisoned first, then the oldest
 * pending, never a row in flight), and the rate-limited report of what went.
 *
 * @module
 */
import { getLogger } from "../logger.ts";
import type { Clock } from "../util/mod.ts";
import type { Statements } from "./database.ts";

const log = getLogger("outbox");

/** At most one drop report per this many ms; the rest are counted into the next. */
const DROP_LOG_EVERY_MS = 1_000;

/** A row the bound removed. */
export interface Victim {
  seq: number;
  kind: string;
  poisoned: boolean;
}

/** What {@linkcode dropOldest} must know of the queue. */
export interface DropOptions {
  /** The row just inserted: never dropped. */
  newest: number;
  /** Rows handed to the send: never dropped. */
  inFlight: ReadonlySet<number>;
  /** Whether any poisoned row is kept. */
  anyPoisoned: boolean;
}

/**
 * Inside a transaction: deletes `count` rows, the oldest poisoned first, then the oldest
 * pending, and adds them to the `dropped` total in the file. Returns what it deleted.
 */
export function dropOldest(q: Statements, count: number, options: DropOptions): Victim[] {
  const { newest, inFlight } = options;
  const victims: Victim[] = [];
  if (options.anyPoisoned) {
    const rows = q.oldestPoisoned.all(count) as { seq: number; kind: string }[];
    for (const row of rows) {
      q.deletePoisoned.run(row.seq);
      victims.push({ ...row, poisoned: true });
    }
  }
  let need = count - victims.length;
  if (need > 0) {
    const rows = q.oldestPending.all(need + inFlight.size) as { seq: number; kind: string }[];
    for (const row of rows) {
      if (need === 0) break;
      if (inFlight.has(row.seq) || row.seq === newest) continue;
      q.deletePending.run(row.seq);
      victims.push({ ...row, poisoned: false });
      need--;
    }
  }
  if (victims.length > 0) q.metaAdd.run(victims.length, "dropped");
  return victims;
}

/** Logs drops at most once a second, counting the unreported ones into the next report. */
export class DropReport {
  readonly #clock: Clock;
  readonly #maxRows: number;
  #loggedAt = -Infinity;
  #unreported = 0;

  constructor(clock: Clock, maxRows: number) {
    this.#clock = clock;
    this.#maxRows = maxRows;
  }

  /** Reports `victims`, `total` being the drops ever made from this file. */
  report(victims: readonly Victim[], total: number): void {
    const now = this.#clock.now();
    if (now - this.#loggedAt < DROP_LOG_EVERY_MS) {
      this.#unreported += victims.length;
      return;
    }
    const first = victims[0];
    const described = victims.length === 1 && first
      ? `${first.poisoned ? "poisoned" : "pending"} event seq=${first.seq} kind=${first.kind}`
      : `${victims.length} events (seq ${victims.map((v) => v.seq).join(", ")})`;
    const earlier = this.#unreported > 0
      ? `; ${this.#unreported} more dropped since the last report`
      : "";
    log.warn(
      `Outbox full (maxRows ${this.#maxRows}): dropped ${described}${earlier}; ` +
        `${total} dropped in total`,
    );
    this.#loggedAt = now;
    this.#unreported = 0;
  }

  /** Reports the drops not reported yet (at close). */
  flush(): void {
    if (this.#unreported === 0) return;
    log.warn(`Outbox dropped ${this.#unreported} more event(s) since the last report`);
    this.#unreported = 0;
  }
}
