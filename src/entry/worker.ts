/**
 * What every Worker entry does: run its one command with the arguments the launcher sends.
 *
 * @module
 */
import { type Command, runGuarded } from "../cli/mod.ts";
import { readEnv } from "../config/mod.ts";
import { serveWorker } from "../sandbox/mod.ts";

/** Serves `command` in this Worker: its arguments are the start message's, after the name. */
export function serveCommand(command: Command): void {
  serveWorker((start) => runGuarded(command, start.args.slice(1), { env: readEnv() }));
}
