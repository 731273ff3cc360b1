/**
 * The launcher: runs one command in a Worker holding exactly that command's grants. For `run` it
 * also owns the process lifetime of the run: a pidfile in the state dir, the sweep of what a
 * killed previous run left behind before the new provider starts, and of what this run leaves
 * at its end (docs/sandbox.md).
 *
 * @module
 */
import type { Grants, SandboxPermissions } from "./grants.ts";
import { errorText, SymlinkError } from "../util/mod.ts";
import { pidfilePath, readPidfile, recordIsLive, removePidfile, writePidfile } from "./pidfile.ts";
import { sweepRun } from "./processes.ts";
import { runInWorker } from "./worker_host.ts";

/** What the launcher runs, resolved before anything starts. */
export interface LaunchPlan {
  /** The command line the Worker runs. */
  args: string[];
  grants: Grants;
  /** The variables the Worker may read. */
  env: string[];
  /** The system information the Worker may read (`hostname`). */
  sys: string[];
  /**
   * For `run`: its state dir (the pidfile, the sweep), its resolved configuration, and the
   * launcher's checks and preparation for it, done while the Worker loads (a
   * {@linkcode SymlinkError} refuses the run with exit code 2).
   */
  run?: { stateDir: string; config: unknown; prepare?: () => Promise<void> };
}

/** Options of {@linkcode launch}. */
export interface LaunchOptions {
  /** This run's id (default: a random UUID). */
  runId?: string;
  /** Prints one line on stderr (default: `console.error`). */
  report?: (line: string) => void;
}

const defaultReport = (line: string) => {
  // deno-lint-ignore no-console
  console.error(line);
};

/** Runs `plan` in a Worker of module `workerUrl`; resolves with the exit code. */
export async function launch(
  workerUrl: URL,
  plan: LaunchPlan,
  options: LaunchOptions = {},
): Promise<number> {
  const report = options.report ?? defaultReport;
  const runId = options.runId ?? crypto.randomUUID();
  const permissions: SandboxPermissions = { ...plan.grants, env: plan.env, sys: plan.sys };
  const start = { type: "start" as const, args: plan.args, runId, grants: plan.grants };
  if (plan.run === undefined) return await runInWorker(workerUrl, permissions, start, { report });

  const run = plan.run;
  const pidfile = pidfilePath(run.stateDir);
  let owned = false;
  // While the Worker loads its modules: the run's checks and preparation, the pidfile, the
  // sweep of a killed previous run. The command starts once they are done.
  const before = async (): Promise<number | undefined> => {
    try {
      await run.prepare?.();
    } catch (error) {
      if (!(error instanceof SymlinkError)) throw error;
      report(`agent-relay-runner: ${error.message}`);
      return 2;
    }
    try {
      const previous = readPidfile(pidfile);
      // A live runner keeps its pidfile and its processes: the outbox lock refuses this one.
      if (previous === undefined || !recordIsLive(previous)) {
        if (previous !== undefined) {
          const swept = await sweepRun(previous.runId);
          if (swept > 0) {
            report(
              `agent-relay-runner: ended ${swept} process(es) left by the previous run ` +
                `(pid ${previous.pid}) on ${run.stateDir}`,
            );
          }
        }
        writePidfile(pidfile, runId);
        owned = true;
      }
    } catch (error) {
      if (error instanceof SymlinkError) {
        report(`agent-relay-runner: ${error.message}`);
        return 2;
      }
      // A full disk, a read-only filesystem...: one line, exit 1, never a stack trace.
      report(`agent-relay-runner: cannot write the pidfile ${pidfile}: ${errorText(error)}`);
      return 1;
    }
    return undefined;
  };
  try {
    return await runInWorker(workerUrl, permissions, { ...start, config: run.config }, {
      report,
      relaySignals: true,
      before,
      onImmediateExit: async () => void await sweepRun(runId, { graceMs: 0 }),
    });
  } finally {
    // The run is over: whatever still carries its id (tool processes in their own sessions).
    await sweepRun(runId);
    if (owned) removePidfile(pidfile);
  }
}
