/**
 * The runner-info file (contracts section 1): one JSON object telling the orchestrator the control
 * port, written atomically (temp file, then rename) with mode 0600 once the control server
 * listens. It never holds a secret.
 *
 * @module
 */
import type { ProviderName } from "../types.ts";
import { writeFileNoFollow } from "../util/mod.ts";

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
export function writeRunnerInfo(path: string, info: RunnerInfo): void {
  const text = JSON.stringify(info, null, 2) + "\n";
  try {
    // A new file renamed into place: a symlink planted at `path` is refused, never followed.
    writeFileNoFollow(path, text, 0o600);
  } catch (error) {
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
