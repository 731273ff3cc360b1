/**
 * The program's entry modules, and where each is: in the source files or in the bundle.
 *
 * main.ts loads the launcher (src/entry/launcher.ts). The launcher runs `help`, `version`,
 * `status` and `attach` itself and each other command in a Worker of that command's own entry
 * (src/entry/run.ts, ...), so that each isolate loads only what its part runs. `deno task
 * build` bundles each entry into one module of the same name (src/bundle/); main.ts uses those
 * while they are fresh.
 *
 * This module imports nothing: main.ts loads it before it knows which copy of the program to load.
 *
 * @module
 */

/** The commands that run in the sandbox's Worker, and the name of each one's entry module. */
export const WORKER_ENTRIES = {
  "run": "run",
  "outbox": "outbox",
  "send": "send",
  "dev-relay": "dev_relay",
} as const;

/** A command that runs in the sandbox's Worker. */
export type WorkerCommand = keyof typeof WORKER_ENTRIES;

/** The entry modules of one copy of the program. */
export interface Entries {
  /** The launcher: exports `launcher` (src/entry/launcher.ts). */
  launcher: URL;
  /** The Worker's module for each sandboxed command. */
  workers: Record<WorkerCommand, URL>;
}

/** The entry modules' names, launcher first: the names of the bundle's files too. */
export const ENTRY_NAMES: readonly string[] = ["launcher", ...Object.values(WORKER_ENTRIES)];

function entries(dir: URL, extension: string): Entries {
  const at = (name: string) => new URL(`${name}${extension}`, dir);
  const workers = {} as Record<WorkerCommand, URL>;
  for (const [command, name] of Object.entries(WORKER_ENTRIES)) {
    workers[command as WorkerCommand] = at(name);
  }
  return { launcher: at("launcher"), workers };
}

/** The entries in the source files under the program's root `root` (a URL ending in `/`). */
export function sourceEntries(root: URL): Entries {
  return entries(new URL("src/entry/", root), ".ts");
}

/** The entries in the bundle folder `dir` (a URL ending in `/`: `dist/bundle/`). */
export function bundledEntries(dir: URL): Entries {
  return entries(dir, ".js");
}

/** Whether `command` runs in the sandbox's Worker. */
export function isWorkerCommand(command: string | undefined): command is WorkerCommand {
  return command !== undefined && Object.hasOwn(WORKER_ENTRIES, command);
}
