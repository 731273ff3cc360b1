/**
 * The processes a test's child started, read from /proc (Linux): to find a provider's process
 * among the runner's descendants, and to check (and force) that all of them exit.
 *
 * @module
 */
import { sleep } from "./wait.ts";

/** Every live descendant of `pid` (the children of all its threads, recursively). */
export function descendants(pid: number): number[] {
  const found: number[] = [];
  const visit = (parent: number) => {
    let tasks: Deno.DirEntry[];
    try {
      tasks = [...Deno.readDirSync(`/proc/${parent}/task`)];
    } catch {
      return; // Gone meanwhile.
    }
    for (const task of tasks) {
      let list = "";
      try {
        list = Deno.readTextFileSync(`/proc/${parent}/task/${task.name}/children`);
      } catch {
        continue; // The thread ended meanwhile.
      }
      for (const child of list.trim().split(/\s+/).filter(Boolean).map(Number)) {
        if (found.includes(child)) continue;
        found.push(child);
        visit(child);
      }
    }
  };
  visit(pid);
  return found;
}

/** A process's argv, or `undefined` once it is gone (or a zombie). */
export function cmdline(pid: number): string[] | undefined {
  try {
    const argv = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").filter(Boolean);
    return argv.length > 0 ? argv : undefined;
  } catch {
    return undefined;
  }
}

/** Whether `pid` runs (not gone, not a zombie). */
export function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** Waits up to `ms` for `pids` to exit; SIGKILLs the ones left and returns them. */
export async function reap(pids: number[], ms: number): Promise<number[]> {
  const deadline = Date.now() + ms;
  let left = pids.filter(alive);
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(50);
    left = left.filter(alive);
  }
  for (const pid of left) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // Gone meanwhile.
    }
  }
  return left;
}
