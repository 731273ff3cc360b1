/**
 * The sandbox: every command that reads untrusted input (the relay, the hooks, the provider's
 * output) runs in a Worker holding exactly that run's grants, started by a small trusted
 * launcher that also owns the run's process lifetime; files opened without following symlinks
 * (docs/sandbox.md).
 *
 * This folder imports nothing from the rest of `src/` but `util`: the configuration, the
 * logger and the outbox may all use its file helpers.
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
  workerPermissions,
} from "./grants.ts";
export { launch, type LaunchOptions, type LaunchPlan } from "./launch.ts";
export {
  checkNotSymlink,
  chmodNoFollow,
  openNoFollow,
  SymlinkError,
  writeFileNoFollow,
} from "../util/mod.ts";
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
