/**
 * Every file a run writes, checked before the run starts: a symlink planted at one of them is
 * refused there, with one line naming it, before any code could write, append to or chmod its
 * target. (Each writer refuses a link too, at the moment it opens the file.)
 *
 * @module
 */
import type { RunConfig } from "../config/mod.ts";
import { importLazily, join, SymlinkError } from "../util/mod.ts";

/** The files a run of `config` writes (the log, the runner-info file, the state, the outbox). */
export async function runFiles(config: RunConfig): Promise<string[]> {
  // Loaded here, not at start: the launcher checks while the sandbox's Worker loads.
  const { outboxFiles, outboxPath } = await importLazily<typeof import("../outbox/files/mod.ts")>(
    "../outbox/files/mod.ts",
    import.meta.url,
  );
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
export async function refusePlantedLinks(config: RunConfig): Promise<void> {
  for (const path of [...await runFiles(config), join(config.stateDir, "claude-plugin")]) {
    let isLink = false;
    try {
      isLink = Deno.lstatSync(path).isSymlink;
    } catch {
      // Not there yet.
    }
    if (isLink) throw new SymlinkError(`${path} is a symlink: refusing to follow it (remove it)`);
  }
}
