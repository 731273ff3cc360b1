/**
 * The durable outbox: every event the runner owes the relay is stored in SQLite first, then
 * delivered in order, at least once, by a pump that backs off while the relay is away
 * (docs/outbox.md).
 *
 * @module
 */
export { Outbox } from "./outbox.ts";
export type { OutboxOptions } from "./options.ts";
export type { EnqueueResult, OutboxEventInput } from "./event.ts";
export { defaultClassify, type FailureClass, type OutboxSend, type SendResult } from "./send.ts";
export type { OutboxChange, OutboxChangeReason, OutboxStats } from "./changes.ts";
export type { PurgeTarget } from "./admin.ts";
export type { Durability } from "./database.ts";
export { BUSY_TIMEOUT_MS } from "./busy.ts";
export { OutboxHoldFullError } from "./held.ts";
export { LOCK_WAIT_MS, OutboxLockedError, outboxLockHeld } from "./lock.ts";
export { lockPathFor, OUTBOX_FILE, outboxFiles, outboxPath } from "./path.ts";
export { prepareOutboxFile } from "./create.ts";
export {
  inspectOutbox,
  type OutboxMode,
  type OutboxRecord,
  type OutboxSnapshot,
  type PoisonedRecord,
} from "./store.ts";
