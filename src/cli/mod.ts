/**
 * The command line: `run`, `dev-relay`, `send` and `outbox`,
 * one file per command, loaded only when that command runs.
 *
 * @module
 */
export { main } from "./main.ts";
export { HELP } from "./help.ts";
