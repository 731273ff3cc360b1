/**
 * The runner-info file (contracts §1): one JSON object telling the orchestrator the control port,
 * written atomically (temp file, then rename) with mode 0600 once the control server listens. It
 * never holds a secret.
 *
 * @module
 */
import { dirname, join } from "node:path";
import type { ProviderName } from "../types.ts";

/** The runner-info file's content. */
export interface RunnerInfo {
  pid: number;
  agentId: string;
  provider: ProviderName;
  controlPort: number;
  version: string;
  /** ISO-8601. */
  startedAt: string;
  logFile: string;
  outboxPath: string;
  stateDir: string;
}

/** Writes `info` to `path` atomically with mode 0600. */
export async function writeRunnerInfo(path: string, info: RunnerInfo): Promise<void> {
  const tmp = join(dirname(path), `.runner-info.${Deno.pid}.${crypto.randomUUID()}.tmp`);
  const text = JSON.stringify(info, null, 2) + "\n";
  try {
    await Deno.writeTextFile(tmp, text, { mode: 0o600 });
    await Deno.chmod(tmp, 0o600);
    await Deno.rename(tmp, path);
  } catch (error) {
    await Deno.remove(tmp).catch(() => {});
    throw new Error(
      `Writing the runner-info file ${path} failed: ${
        error instanceof Error ? error.message : error
      }`,
    );
  }
}

/** Removes the runner-info file if it is still this process's. */
export async function removeRunnerInfo(path: string): Promise<void> {
  try {
    const current = JSON.parse(await Deno.readTextFile(path));
    if (current?.pid === Deno.pid) await Deno.remove(path);
  } catch {
    // Gone or replaced: nothing to do.
  }
}
