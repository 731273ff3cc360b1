/**
 * Every file a run writes, checked before the run starts: a symlink planted at one of them is
 * refused there, with one line naming it, before any code could write, append to or chmod its
 * target. (Each writer refuses a link too, at the moment it opens the file.)
 *
 * @module
 */
import { join } from "node:path";
import type { RunConfig } from "../config/mod.ts";
import { outboxFiles, outboxPath } from "../outbox/mod.ts";
import { SymlinkError } from "../util/mod.ts";

/** The files a run of `config` writes (the log, the runner-info file, the state, the outbox). */
export function runFiles(config: RunConfig): string[] {
  return [
    ...(config.logFile === "-" ? [] : [config.logFile]),
    config.infoFile,
    join(config.stateDir, "control-secret"),
    join(config.stateDir, "provider-session.json"),
    ...outboxFiles(outboxPath(config.outboxDir)),
  ];
}

/**
 * Throws {@linkcode SymlinkError} naming the first run file (or the plugin dir) that is a
 * symlink. (Anything else in the way, a dir where the log file should be, is each writer's to
 * report.)
 */
export function refusePlantedLinks(config: RunConfig): void {
  for (const path of [...runFiles(config), join(config.stateDir, "claude-plugin")]) {
    let isLink = false;
    try {
      isLink = Deno.lstatSync(path).isSymlink;
    } catch {
      // Not there yet.
    }
    if (isLink) throw new SymlinkError(`${path} is a symlink: refusing to follow it (remove it)`);
  }
}
