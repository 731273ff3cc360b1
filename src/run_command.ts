/**
 * `agent-relay-runner run`: resolves the configuration, prepares dirs and logging, then runs the
 * runner until it stops. Returns the exit code of contracts §1.
 *
 * @module
 */
import { resolveRunConfig } from "./config.ts";
import { DirError, prepareDirs } from "./dirs.ts";
import { configureLogging, getLogger } from "./logger.ts";
import { HELP } from "./cli.ts";
import { VERSION } from "./version.ts";

/** Runs `run` with its arguments; returns the exit code. */
export async function runCommand(
  args: string[],
  env: Record<string, string | undefined>,
): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
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
  log.error(`provider ${config.provider} is not available yet`);
  logging.close();
  await Promise.resolve();
  return 1;
}
