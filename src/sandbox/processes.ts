/**
 * Processes left behind by a run: the provider and everything it started carry the run's id in
 * their environment (`AGENT_RELAY_RUN_ID`), tool processes in their own sessions included, so
 * the launcher finds them in `/proc/<pid>/environ` (same-user processes only) and ends them.
 *
 * Reading another process's `/proc` entries needs Deno's full permissions: only the launcher
 * (the trusted outer process) calls this, never the sandboxed Worker.
 *
 * @module
 */

/** The variable every process of a run carries. */
export const RUN_ID_VAR = "AGENT_RELAY_RUN_ID";

const decoder = new TextDecoder();

function readProc(pid: number, file: string): string | undefined {
  try {
    return decoder.decode(Deno.readFileSync(`/proc/${pid}/${file}`));
  } catch {
    return undefined; // Gone, or not ours to read.
  }
}

/**
 * A process's start time (clock ticks since boot, `/proc/<pid>/stat` field 22): with the pid it
 * names one process for good, since pids are reused.
 */
export function processStartTime(pid: number): string | undefined {
  const stat = readProc(pid, "stat");
  if (stat === undefined) return undefined;
  // The command name (field 2) may hold spaces and parentheses: count from the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return fields[19];
}

/** Whether `pid` is alive (a zombie counts as gone). */
export function isAlive(pid: number): boolean {
  const stat = readProc(pid, "stat");
  if (stat === undefined) return false;
  return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
}

/** The pids of this user's processes whose environment holds `AGENT_RELAY_RUN_ID=<runId>`. */
export function findRunProcesses(runId: string): number[] {
  if (runId === "") return [];
  const needle = `${RUN_ID_VAR}=${runId}`;
  const uid = Deno.uid();
  const found: number[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync("/proc")];
  } catch {
    return []; // No /proc (not Linux): nothing can be found.
  }
  for (const entry of entries) {
    if (!/^[0-9]+$/.test(entry.name)) continue;
    const pid = Number(entry.name);
    if (pid === Deno.pid) continue;
    try {
      if (Deno.statSync(`/proc/${pid}`).uid !== uid) continue;
    } catch {
      continue;
    }
    const environ = readProc(pid, "environ");
    if (environ?.split("\0").includes(needle) && isAlive(pid)) found.push(pid);
  }
  return found.sort((a, b) => a - b);
}

function signal(pid: number, sig: Deno.Signal): void {
  try {
    Deno.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

/** Options of {@linkcode endProcesses}. */
export interface EndOptions {
  /** How long SIGTERM has before SIGKILL (default 2 000 ms); 0 sends SIGKILL at once. */
  graceMs?: number;
}

/**
 * Ends `pids`: SIGTERM, then SIGKILL for those still alive after the grace time. Resolves once
 * every one is gone (or after SIGKILL). Returns the pids that needed SIGKILL.
 */
export async function endProcesses(pids: number[], options: EndOptions = {}): Promise<number[]> {
  const graceMs = options.graceMs ?? 2_000;
  if (graceMs > 0) { for (const pid of pids) signal(pid, "SIGTERM"); }
  const deadline = Date.now() + graceMs;
  let alive = pids.filter(isAlive);
  while (alive.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    alive = alive.filter(isAlive);
  }
  for (const pid of alive) signal(pid, "SIGKILL");
  return alive;
}

/** Finds and ends every process of `runId`; returns how many there were. */
export async function sweepRun(runId: string, options: EndOptions = {}): Promise<number> {
  const pids = findRunProcesses(runId);
  if (pids.length > 0) await endProcesses(pids, options);
  return pids.length;
}
