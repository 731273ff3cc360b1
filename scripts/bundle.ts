/**
 * `deno task build`: the program's bundle, `dist/bundle/`, and its manifest.
 *
 * A start from source makes Deno read, check and compile about 45 modules in the launcher and
 * 110 in a run's Worker, one at a time. The bundle holds the same program as a few minified
 * modules that load several times faster (docs/performance.md). main.ts loads it only while the
 * manifest shows every source file unchanged (src/bundle/manifest.ts), so a build is never
 * required and a stale one never runs.
 *
 * The build:
 *
 * 1. removes the old manifest (from here on, and after an interrupted build, starts load the
 *    source files);
 * 2. stamps every file under `src/`, deno.json and deno.lock (before reading them: a file edited
 *    during the build then fails the check);
 * 3. copies them to a temporary folder, where each `importLazily("./x.ts", import.meta.url)`
 *    becomes `import("./x.ts")`. In the source, a non-literal import keeps Deno from reading
 *    every command at start (src/util/import_lazily.ts); esbuild, below, keeps a literal one
 *    lazy;
 * 4. bundles the copy's entries (src/entry/mod.ts), minified with their names kept (stack traces
 *    name functions):
 *    - each Worker entry (`run.js`, `outbox.js`, `send.js`, `dev_relay.js`) is one module that
 *      holds all its command can load; a lazy import in it (an adapter) is initialised only when
 *      it runs;
 *    - the launcher (`launcher.js`) is split: what the launcher needs before the Worker starts
 *      loads at once, and what it imports lazily (the outbox's files, the CLI for `help`,
 *      `version`, `status` and `attach`) is a separate module (`chunk-*.js`, `status-*.js`...)
 *      loaded when the import runs;
 * 5. swaps the new modules in for the old bundle and writes the manifest, last.
 *
 * Every module is in `dist/bundle/`, two folders below the program's root like the source's
 * `src/util/app_dir.ts`, so code bundled from it names the same root.
 *
 * - `deno run -A scripts/bundle.ts` builds; `--check` only says whether the bundle is fresh
 *   (exit 0) or not (exit 1).
 *
 * @module
 */
import { join, relative, resolve } from "node:path";
import {
  BUNDLE_DIR,
  freshBundle,
  type Manifest,
  MANIFEST_FILE,
  MANIFEST_FORMAT,
  type Stamp,
  stampOf,
} from "../src/bundle/mod.ts";
import { ENTRY_NAMES, WORKER_ENTRIES } from "../src/entry/mod.ts";

/** The project root (where deno.json is). */
const APP_DIR = resolve(import.meta.dirname ?? ".", "..");

/** A lazy import as the source writes it (its type argument, if any, names no `>`). */
const LAZY_CALL = /importLazily(?:<[^>]*>)?\(\s*("[^"\n]+")\s*,\s*import\.meta\.url\s*,?\s*\)/g;
/** Any other use of `importLazily` as a call: the build refuses it (its module is unknown). */
const OTHER_CALL = /\bimportLazily\s*[<(]/;
/** The one file allowed to keep `importLazily` calls: its definition. */
const DEFINITION = "src/util/import_lazily.ts";

/** `source` with each lazy import written as a literal `import()`; throws on one it cannot read. */
export function literalImports(source: string, path = "source"): string {
  const out = source.replace(LAZY_CALL, (_call, specifier: string) => `import(${specifier})`);
  if (path !== DEFINITION && OTHER_CALL.test(out)) {
    throw new Error(
      `${path}: an importLazily call is not importLazily("./literal.ts", import.meta.url): ` +
        `the build cannot tell what it loads`,
    );
  }
  return out;
}

/** Every file the bundle is built from, relative to `root`: all of `src/`, deno.json, deno.lock. */
export function sourceFiles(root: string): string[] {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of Deno.readDirSync(join(root, dir))) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) walk(path);
      else if (entry.isFile) files.push(path);
    }
  };
  walk("src");
  for (const file of ["deno.json", "deno.lock"]) {
    try {
      if (Deno.statSync(join(root, file)).isFile) files.push(file);
    } catch {
      // No lockfile: nothing to stamp.
    }
  }
  return files.sort();
}

/** Options of {@linkcode buildBundle}. */
export interface BuildOptions {
  /** Where the program is (default: this repository). */
  root?: string;
  /** Lines of progress (default: none). */
  log?: (line: string) => void;
}

function removeIfPresent(path: string, options?: Deno.RemoveOptions): void {
  try {
    Deno.removeSync(path, options);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

async function denoBundle(copy: string, out: string, entries: string[], split: boolean) {
  const built = await new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      `--config=${join(copy, "deno.json")}`,
      "--platform=deno",
      "--format=esm",
      "--quiet",
      "--minify",
      "--keep-names",
      ...(split ? ["--code-splitting"] : []),
      "--outdir",
      out,
      ...entries.map((name) => join(copy, "src", "entry", `${name}.ts`)),
    ],
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!built.success) {
    throw new Error(`deno bundle failed: ${new TextDecoder().decode(built.stderr).trim()}`);
  }
}

/** Builds `dist/bundle/` and its manifest under the root; resolves with the bundle's folder. */
export async function buildBundle(options: BuildOptions = {}): Promise<string> {
  const root = resolve(options.root ?? APP_DIR);
  const bundleDir = join(root, BUNDLE_DIR);
  removeIfPresent(join(root, MANIFEST_FILE));
  const files = sourceFiles(root);
  const stamps: Stamp[] = files.map((path) => stampOf(root, path));
  const copy = Deno.makeTempDirSync({ prefix: "agent-relay-bundle-" });
  let modules: string[];
  try {
    for (const path of files) {
      const target = join(copy, path);
      Deno.mkdirSync(join(target, ".."), { recursive: true });
      if (path.endsWith(".ts")) {
        const source = Deno.readTextFileSync(join(root, path));
        Deno.writeTextFileSync(target, literalImports(source, path));
      } else {
        Deno.copyFileSync(join(root, path), target);
      }
    }
    const out = join(copy, "out");
    await denoBundle(copy, out, ["launcher"], true);
    await denoBundle(copy, out, Object.values(WORKER_ENTRIES), false);
    modules = [...Deno.readDirSync(out)].map((entry) => entry.name).sort();
    // Built beside the bundle, then swapped in by two renames: a start never meets a half-copied
    // folder (and since the manifest went first, no start takes the bundle meanwhile).
    const next = `${bundleDir}.new`;
    const previous = `${bundleDir}.old`;
    removeIfPresent(next, { recursive: true });
    removeIfPresent(previous, { recursive: true });
    Deno.mkdirSync(next, { recursive: true });
    for (const name of modules) Deno.copyFileSync(join(out, name), join(next, name));
    try {
      Deno.renameSync(bundleDir, previous);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    Deno.renameSync(next, bundleDir);
    removeIfPresent(previous, { recursive: true });
  } finally {
    Deno.removeSync(copy, { recursive: true });
  }
  // Every module is stamped: a start checks that each one it may load is the one built.
  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    files: [...stamps, ...modules.map((name) => stampOf(root, `${BUNDLE_DIR}/${name}`))],
  };
  const partial = join(root, `${MANIFEST_FILE}.new`);
  Deno.writeTextFileSync(partial, `${JSON.stringify(manifest)}\n`);
  Deno.renameSync(partial, join(root, MANIFEST_FILE));
  const entries = ENTRY_NAMES.map((name) => `${name}.js`);
  const kib = (name: string) => Math.round(Deno.statSync(join(bundleDir, name)).size / 1024);
  options.log?.(
    `bundled ${files.filter((f) => f.endsWith(".ts")).length} source modules into ` +
      `${relative(Deno.cwd(), bundleDir) || "."}/: ` +
      entries.map((name) => `${name} ${kib(name)} KiB`).join(", ") +
      ` and ${modules.length - entries.length} modules the launcher loads lazily`,
  );
  return bundleDir;
}

if (import.meta.main) {
  // deno-lint-ignore no-console
  const log = (line: string) => console.log(line);
  const args = Deno.args;
  if (args.length === 1 && args[0] === "--check") {
    const fresh = freshBundle(APP_DIR);
    log(
      fresh
        ? `${BUNDLE_DIR}/ is fresh: starts load it`
        : `no fresh bundle in ${BUNDLE_DIR}/: starts load the source files`,
    );
    Deno.exit(fresh ? 0 : 1);
  } else if (args.length === 0) {
    const started = performance.now();
    try {
      await buildBundle({ log });
    } catch (error) {
      // deno-lint-ignore no-console
      console.error(`bundle: ${error instanceof Error ? error.message : String(error)}`);
      Deno.exit(1);
    }
    log(`in ${Math.round(performance.now() - started)} ms`);
  } else {
    // deno-lint-ignore no-console
    console.error("usage: bundle.ts [--check]");
    Deno.exit(2);
  }
}
