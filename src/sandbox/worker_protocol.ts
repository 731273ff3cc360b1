/**
 * The messages between the launcher (the trusted outer process) and the sandboxed Worker that
 * runs a command: one `start`, then `stop` for each signal the launcher relays; the Worker
 * answers with one `exit`.
 *
 * @module
 */
import type { Grants } from "./grants.ts";

/** The launcher's first message: what to run, and this run's id and grants. */
export interface StartMessage {
  type: "start";
  /** The command line (`run --agent-id ...`, `outbox stats ...`). */
  args: string[];
  /** This run's id (`AGENT_RELAY_RUN_ID`). */
  runId: string;
  /** The grants the Worker holds (shown in `/status`). */
  grants: Grants;
  /** `run`'s configuration as the launcher resolved it (structured-cloned plain data). */
  config?: unknown;
}

/** A signal the launcher received: the command stops gracefully. */
export interface StopMessage {
  type: "stop";
  signal: string;
}

/** The Worker's last message: the command's exit code. */
export interface ExitMessage {
  type: "exit";
  code: number;
}

/** Launcher -> Worker. */
export type ToWorker = StartMessage | StopMessage;
/** Worker -> launcher. */
export type FromWorker = ExitMessage;
