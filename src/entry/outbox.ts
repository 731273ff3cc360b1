/**
 * The sandbox's Worker for `outbox`: loads only that command (src/entry/mod.ts).
 *
 * @module
 */
import { outboxCommand } from "../cli/outbox.ts";
import { serveCommand } from "./worker.ts";

serveCommand(outboxCommand);
