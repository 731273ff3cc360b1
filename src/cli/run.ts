/**
 * `agent-relay-runner run`: resolves the configuration, prepares dirs and logging, then runs the
 * runner until it stops. Returns the exit code of contracts §1.
 *
 * @module
 */
import { DirError, prepareDirs, resolveRunConfig } from "../config/mod.ts";
import { configureLogging, getLogger } from "../logger.ts";
import { HELP } from "./help.ts";
import { OutboxLockedError } from "../outbox/mod.ts";
import { Runner } from "../runner/mod.ts";
import { VERSION } from "../version.ts";

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
  const config = resolveRunConfig(args, env);
  try {
    prepareDirs(config);
  } catch (error) {
    if (error instanceof DirError) {
      // deno-lint-ignore no-console
      console.error(`agent-relay-runner: ${error.message}`);
      return 1;
    }
    throw error;
  }
  const logging = configureLogging({
    logDir: config.logDir,
    agentId: config.agentId,
    level: config.logLevel,
    format: config.logFormat,
  });
  const log = getLogger("runner");
  log.info(`agent-relay-runner ${VERSION} starting agent ${config.agentId} (${config.provider})`);
  const runner = new Runner(config, { logFile: logging.logFile });

  // First SIGTERM/SIGINT: graceful stop. A second one: exit at once. Signals within half a
  // second of the first count as the same one (a terminal's Ctrl-C reaches both a wrapper such
  // as `deno task start` and the runner, and the wrapper passes it on).
  let firstSignalAt: number | undefined;
  const onSignal = (signal: Deno.Signal) => () => {
    const now = Date.now();
    if (firstSignalAt === undefined) {
      firstSignalAt = now;
      log.info(`${signal} received: stopping gracefully (send it again to exit at once)`);
      void runner.stop(0);
    } else if (now - firstSignalAt >= 500) {
      log.warn(`${signal} received again: exiting at once`);
      runner.killProvider();
      logging.close();
      Deno.exit(1);
    }
  };
  const listeners = (["SIGTERM", "SIGINT"] as const).map((signal) => {
    const listener = onSignal(signal);
    Deno.addSignalListener(signal, listener);
    return [signal, listener] as const;
  });
  try {
    try {
      await runner.start();
    } catch (error) {
      // A start that failed exits 1, even when a signal came in while it cleaned up.
      if (firstSignalAt !== undefined) await runner.done;
      const message = error instanceof OutboxLockedError
        ? error.message
        : `cannot start: ${error instanceof Error ? error.message : String(error)}`;
      log.fatal(message);
      // deno-lint-ignore no-console
      console.error(`agent-relay-runner: ${message}`);
      return 1;
    }
    return await runner.done;
  } finally {
    for (const [signal, listener] of listeners) Deno.removeSignalListener(signal, listener);
    logging.close();
  }
}
