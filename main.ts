/**
 * agent-relay-runner: one process per AI coding agent, bridging its CLI to an Agent Relay server.
 *
 * `deno task start -- --help` or the compiled binary's `--help` lists the commands.
 *
 * This file only chooses which copy of the program to load, then runs its launcher
 * (src/entry/launcher.ts): the bundle that `deno task build` made (`dist/bundle/`) when it was
 * built from exactly the source files here now, else the source files. Both are the same
 * program; the bundle starts a runner about a quarter faster. A stale or missing bundle is
 * ignored (src/bundle/manifest.ts).
 *
 * @module
 */
import { BUNDLE_DIR, freshBundle } from "./src/bundle/mod.ts";
import { bundledEntries, sourceEntries } from "./src/entry/mod.ts";

const root = new URL("./", import.meta.url);
const entries = import.meta.dirname !== undefined && freshBundle(import.meta.dirname)
  ? bundledEntries(new URL(`${BUNDLE_DIR}/`, root))
  : sourceEntries(root);
// A non-literal import: Deno reads a literal import's whole module graph at start, whichever copy
// runs (src/util/import_lazily.ts).
const { launcher }: typeof import("./src/entry/launcher.ts") = await import(entries.launcher.href);
Deno.exit(await launcher(Deno.args, { workers: entries.workers }));
