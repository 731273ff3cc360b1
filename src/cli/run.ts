/**
 * `agent-relay-runner run`: resolves the configuration, prepares dirs and logging, then runs the
 * runner until it stops. Returns the exit code of contracts section 1.
 *
 * Under the launcher (src/entry/launcher.ts) this runs in the sandbox's Worker: the launcher has
 * resolved the configuration and prepared the dirs already, relays signals as `stop` messages
 * and handles a second signal itself. Called directly (tests, embedding), it does all of that in-process.
 *
 * Every non-zero exit prints one line on stderr saying why; a start prints one line too:
 * version, agent id, control port, log file, info file.
 *
 * @module
 */
import {
  DirError,
  prepareDirs,
  resolveRunConfig,
  type RunConfig,
  UnsafeDirError,
} from "../config/mod.ts";
import { configureLogging, getLogger, onLogEntry } from "../logger.ts";
import { HELP } from "./help.ts";
import { OutboxLockedError } from "../outbox/mod.ts";
import { Runner, type SandboxGrants } from "../runner/mod.ts";
import { onStop, workerContext } from "../sandbox/mod.ts";
import { errorText, escapeText } from "../util/mod.ts";
import { VERSION } from "../version.ts";

function say(line: string): void {
  // deno-lint-ignore no-console
  console.error(`agent-relay-runner: ${line}`);
}

/** Runs `run` with its arguments; returns the exit code. */
export async function runCommand(
  args: string[],
  env: Record<string, string | undefined>,
): Promise<number> {
  const own = args.includes("--") ? args.slice(0, args.indexOf("--")) : args;
  if (own.includes("--help") || own.includes("-h")) {
    // deno-lint-ignore no-console
    console.log(HELP.trimEnd());
    return 0;
  }
  const context = workerContext();
  if (context?.config !== undefined) {
    return await runRunner(context.config as RunConfig, {
      runId: context.runId,
      sandbox: context.grants,
      signals: "messages",
    });
  }
  const config = resolveRunConfig(args, env);
  try {
    prepareDirs(config);
  } catch (error) {
    if (!(error instanceof DirError)) throw error;
    say(error.message);
    return error instanceof UnsafeDirError ? 2 : 1;
  }
  return await runRunner(config, { signals: "process" });
}

/** Options of {@linkcode runRunner}. */
export interface RunRunnerOptions {
  /** This run's id (`AGENT_RELAY_RUN_ID`); default a random one. */
  runId?: string;
  /** The sandbox's grants, for `/status`. */
  sandbox?: SandboxGrants;
  /**
   * Where stops come from: the launcher's `stop` messages (in the Worker; a second signal is the
   * launcher's), or this process's SIGTERM, SIGINT and SIGHUP.
   */
  signals: "messages" | "process";
}

/** Runs the runner of a prepared configuration until it stops; returns the exit code. */
export async function runRunner(config: RunConfig, options: RunRunnerOptions): Promise<number> {
  const logging = configureLogging(config);
  // The last error the runner logged: the reason a non-zero exit gives on stderr.
  let lastError: string | undefined;
  const offLog = onLogEntry((entry) => {
    if (entry.component === "runner" && (entry.level === "error" || entry.level === "fatal")) {
      lastError = entry.message;
    }
  });
  const log = getLogger("runner");
  log.info(`agent-relay-runner ${VERSION} starting agent ${config.agentId} (${config.provider})`);
  const runner = new Runner(config, {
    logFile: logging.logFile,
    ...(options.runId !== undefined ? { runId: options.runId } : {}),
    ...(options.sandbox !== undefined ? { sandbox: options.sandbox } : {}),
  });

  // First signal: graceful stop. A second one: exit at once. Signals within half a second of the
  // first count as the same one (a terminal's Ctrl-C reaches both a wrapper such as `deno task`
  // and the runner, and the wrapper passes it on).
  let firstSignalAt: number | undefined;
  const onSignal = (signal: string) => {
    const now = Date.now();
    if (firstSignalAt === undefined) {
      firstSignalAt = now;
      log.info(`${signal} received: stopping gracefully (send it again to exit at once)`);
      void runner.stop(0);
    } else if (options.signals === "process" && now - firstSignalAt >= 500) {
      log.warn(`${signal} received again: exiting at once`);
      runner.killProvider();
      logging.close();
      say(`${signal} received again during the stop: exited at once`);
      Deno.exit(1);
    }
  };
  const cleanups: Array<() => void> = [];
  if (options.signals === "messages") {
    const off = onStop(onSignal);
    cleanups.push(() => void off());
  } else {
    for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
      const listener = () => onSignal(signal);
      Deno.addSignalListener(signal, listener);
      cleanups.push(() => Deno.removeSignalListener(signal, listener));
    }
  }
  try {
    try {
      await runner.start();
    } catch (error) {
      // A start that failed exits 1, even when a signal came in while it cleaned up.
      if (firstSignalAt !== undefined) await runner.done;
      const message = error instanceof OutboxLockedError
        ? error.message
        : `cannot start: ${errorText(error)}`;
      log.fatal(message);
      say(message);
      return 1;
    }
    if (firstSignalAt === undefined) {
      say(
        `${VERSION} running agent ${config.agentId}: control port ${runner.controlPort}, ` +
          `log ${escapeText(logging.logFile)}, info ${escapeText(config.infoFile)}`,
      );
    }
    const code = await runner.done;
    if (code !== 0) say(exitReason(runner, code, lastError, logging.logFile));
    return code;
  } finally {
    offLog();
    for (const cleanup of cleanups) cleanup();
    logging.close();
  }
}

/** Why the runner stopped with `code`, as one line. */
function exitReason(
  runner: Runner,
  code: number,
  lastError: string | undefined,
  logFile: string,
): string {
  const stated = (runner as unknown as { stopReason?: unknown }).stopReason;
  const reason = typeof stated === "string" && stated !== "" ? stated : lastError;
  const where = logFile === "-" ? "" : ` (the log: ${escapeText(logFile)})`;
  return reason !== undefined && reason !== ""
    ? `exit ${code}: ${escapeText(reason)}${where}`
    : `exit ${code}: the runner stopped on an error${where}`;
}
