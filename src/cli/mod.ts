/**
 * The command line: `run`, `dev-relay`, `send`, `outbox`, `status` and `attach`, one file per
 * command, loaded only when that command runs (`runner_link.ts`: how the operator commands find
 * a running runner; `attach_view.ts`: attach's lines; `build_info.ts`: what `--version` shows).
 *
 * @module
 */
export { type Command, main, runGuarded } from "./main.ts";
export { HELP } from "./help.ts";
