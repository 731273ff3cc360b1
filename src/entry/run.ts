/**
 * The sandbox's Worker for `run`: loads only that command (src/entry/mod.ts).
 *
 * @module
 */
import { runCommand } from "../cli/run.ts";
import { serveCommand } from "./worker.ts";

serveCommand(runCommand);
