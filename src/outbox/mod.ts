/**
 * The durable outbox: every event the runner owes the relay is stored in SQLite first, then
 * delivered in order, at least once, by a pump that backs off while the relay is away
 * (docs/outbox.md).
 *
 * @module
 */
export * from "./lock.ts";
export * from "./outbox.ts";
export * from "./path.ts";
export {
  inspectOutbox,
  type OutboxMode,
  type OutboxRecord,
  type OutboxSnapshot,
  type PoisonedRecord,
} from "./store.ts";
