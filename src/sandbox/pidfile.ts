/**
 * The launcher's pidfile in the state dir (`runner.pid`, 0600, JSON): which process runs on this
 * state dir and under which run id, so the next start can tell a live runner from one that was
 * killed and sweep what the dead one left.
 *
 * @module
 */
import { checkNotSymlink, join, openNoFollow, writeFileNoFollow } from "../util/mod.ts";
import { isAlive, processStartTime } from "./processes.ts";

/** The pidfile's name in the state dir. */
export const PIDFILE_NAME = "runner.pid";

/** What the pidfile holds. */
export interface PidRecord {
  pid: number;
  /** `/proc/<pid>/stat`'s start time: tells the same process from a reused pid. */
  startTime: string | undefined;
  runId: string;
}

/** The pidfile's path for a state dir. */
export function pidfilePath(stateDir: string): string {
  return join(stateDir, PIDFILE_NAME);
}

/** Reads the pidfile; `undefined` when there is none or it cannot be parsed. A symlink throws. */
export function readPidfile(path: string): PidRecord | undefined {
  let text: string;
  try {
    const file = openNoFollow(path, { read: true });
    try {
      const bytes = new Uint8Array(4096);
      const n = file.readSync(bytes) ?? 0;
      text = new TextDecoder().decode(bytes.subarray(0, n));
    } finally {
      file.close();
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  try {
    const value = JSON.parse(text);
    if (
      typeof value?.pid === "number" && Number.isSafeInteger(value.pid) && value.pid > 0 &&
      typeof value.runId === "string"
    ) {
      return {
        pid: value.pid,
        startTime: typeof value.startTime === "string" ? value.startTime : undefined,
        runId: value.runId,
      };
    }
  } catch {
    // A torn or foreign file: nothing to go by.
  }
  return undefined;
}

/** Whether the process a record names is still the one that wrote it. */
export function recordIsLive(record: PidRecord): boolean {
  if (record.pid === Deno.pid || !isAlive(record.pid)) return false;
  return record.startTime === undefined || processStartTime(record.pid) === record.startTime;
}

/** Writes this process's record (atomically, 0600, never through a link). */
export function writePidfile(path: string, runId: string): PidRecord {
  const record = { pid: Deno.pid, startTime: processStartTime(Deno.pid), runId };
  writeFileNoFollow(path, JSON.stringify(record) + "\n", 0o600);
  return record;
}

/** Removes the pidfile if it is still this process's. */
export function removePidfile(path: string): void {
  try {
    checkNotSymlink(path);
    if (readPidfile(path)?.pid !== Deno.pid) return;
    Deno.removeSync(path);
  } catch {
    // Already gone, or not ours any more.
  }
}
