/**
 * The sandbox's Worker for `send`: loads only that command (src/entry/mod.ts).
 *
 * @module
 */
import { sendCommand } from "../cli/send.ts";
import { serveCommand } from "./worker.ts";

serveCommand(sendCommand);
