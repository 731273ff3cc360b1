/**
 * The sandbox: every command that reads untrusted input (the relay, the hooks, the provider's
 * output) runs in a Worker holding exactly that run's grants, started by a small trusted
 * launcher that also owns the run's process lifetime; files opened without following symlinks
 * (docs/sandbox.md).
 *
 * This folder imports from the rest of `src/` only `util`, the configuration's types, and (in
 * the launcher's check of the run's files, loaded when it runs) the outbox's file names
 * (`src/outbox/files/mod.ts`).
 *
 * @module
 */
export {
  devRelayGrants,
  type GrantEnv,
  type Grants,
  LOOPBACK,
  outboxGrants,
  providerConfigDir,
  providerProgram,
  runGrants,
  type RunPaths,
  type SandboxPermissions,
  sendGrants,
  whichProgram,
  withProgramModules,
  workerPermissions,
} from "./grants.ts";
export { launch, type LaunchOptions, type LaunchPlan } from "./launch.ts";
export { PIDFILE_NAME, pidfilePath, type PidRecord, readPidfile } from "./pidfile.ts";
export { refusePlantedLinks, runFiles } from "./run_files.ts";
export {
  endProcesses,
  findRunProcesses,
  isAlive,
  processStartTime,
  RUN_ID_VAR,
  sweepRun,
} from "./processes.ts";
export { runInWorker, STOP_SIGNALS, type WorkerRunOptions } from "./worker_host.ts";
export type { ExitMessage, StartMessage, StopMessage } from "./worker_protocol.ts";
export { inWorker, onStop, serveWorker, type WorkerContext, workerContext } from "./worker_side.ts";
