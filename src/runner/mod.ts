/**
 * The runner: one agent's lifecycle from start to exit code, wiring the outbox, the control
 * server, the relay client and the provider adapter together (docs/runner.md).
 *
 * @module
 */
export { Runner, type RunnerDeps, type SandboxGrants } from "./runner.ts";
export { readTokenFile, TokenFileError } from "./token_file.ts";
export { type RunnerInfo } from "./runner_info.ts";
