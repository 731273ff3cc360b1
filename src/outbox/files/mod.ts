/**
 * The outbox's files without its queue: their names, and building a new outbox before the run
 * opens it. The launcher checks and prepares a run's outbox through this entry, which loads a
 * handful of modules where `src/outbox/mod.ts` loads the whole outbox (docs/outbox.md).
 *
 * @module
 */
export { outboxFiles, outboxPath } from "../path.ts";
export { prepareOutboxFile } from "../create.ts";
