/**
 * An event to queue: what a caller passes to `enqueue`, what it gets back, and the checks that
 * turn the input into a row (a bad input throws a `TypeError` before anything is stored).
 *
 * @module
 */
import { failureText } from "./send.ts";
import type { OutboxMode } from "./store.ts";

/** An event to queue. */
export interface OutboxEventInput {
  kind: string;
  /** Any JSON-serializable value (`undefined` is stored as `null`). */
  payload?: unknown;
  /** Required for `coalesce`; a label for `append`. */
  dedupeKey?: string;
  /** Default `append`. `coalesce` replaces pending, not-in-flight coalesce events with this key. */
  mode?: OutboxMode;
  /** Epoch ms; default now. Stamped once, kept through retries. */
  occurredAt?: number;
  /**
   * The key the relay deduplicates by. Default: unique per event. A caller that may queue the
   * same event again after a crash (a prompt echo) passes a key derived from what it is about.
   */
  idempotencyKey?: string;
}

/** What `enqueue` assigned, and whether the event is stored yet. */
export interface EnqueueResult {
  seq: number;
  idempotencyKey: string;
  /**
   * `true`: the event is committed to the file and survives a crash. `false`: another
   * connection holds the file's lock; the event waits in memory, in order, and is stored as
   * soon as the lock is free (`Outbox.whenDurable(seq)` resolves then). Acknowledge nothing
   * that must survive a crash until it is durable.
   */
  durable: boolean;
}

/** A checked event, its payload as JSON text. */
export interface CheckedEvent {
  kind: string;
  mode: OutboxMode;
  dedupeKey: string | null;
  occurredAt: number;
  payload: string;
  idempotencyKey?: string;
}

/** Checks `input`, stamping `occurredAt` from `now` when absent; throws a `TypeError` naming the bad value. */
export function checkEvent(input: OutboxEventInput, now: () => number): CheckedEvent {
  if (typeof input !== "object" || input === null) {
    throw new TypeError("Outbox event must be an object with a kind");
  }
  const { kind } = input;
  if (typeof kind !== "string" || kind.trim() === "") {
    throw new TypeError(`Outbox event kind ${JSON.stringify(kind)} must be a non-empty string`);
  }
  const mode = input.mode ?? "append";
  if (mode !== "append" && mode !== "coalesce") {
    throw new TypeError(`Outbox event mode "${mode}" must be "append" or "coalesce"`);
  }
  const dedupeKey = input.dedupeKey;
  if (dedupeKey !== undefined && typeof dedupeKey !== "string") {
    throw new TypeError(`Outbox event dedupeKey ${String(dedupeKey)} must be a string`);
  }
  if (mode === "coalesce" && !dedupeKey) {
    throw new TypeError(`Outbox event "${kind}" in coalesce mode needs a dedupeKey`);
  }
  const occurredAt = input.occurredAt ?? Math.round(now());
  if (typeof occurredAt !== "number" || !Number.isFinite(occurredAt)) {
    throw new TypeError(`Outbox event occurredAt ${String(occurredAt)} must be epoch ms`);
  }
  let payload: string;
  try {
    payload = JSON.stringify(input.payload ?? null) ?? "null";
  } catch (error) {
    throw new TypeError(
      `Outbox event "${kind}" payload is not JSON-serializable: ${failureText(error)}`,
      { cause: error },
    );
  }
  const key = input.idempotencyKey;
  if (key !== undefined && (typeof key !== "string" || key === "" || key.length > 200)) {
    throw new TypeError(
      `Outbox event idempotencyKey ${JSON.stringify(key)} must be 1 to 200 characters`,
    );
  }
  return {
    kind,
    mode,
    dedupeKey: dedupeKey ?? null,
    occurredAt,
    payload,
    ...(key !== undefined ? { idempotencyKey: key } : {}),
  };
}
