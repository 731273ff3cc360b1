/**
 * The bundle's manifest: which files the bundle was built from, and whether it still matches
 * them.
 *
 * `deno task build` writes the bundle, `dist/bundle/` (src/entry/mod.ts names its entry modules),
 * and then `dist/bundle/manifest.json`: the size and modification time of every file it was
 * built from and of every module it wrote. At each start main.ts asks {@linkcode freshBundle}
 * whether all of them are unchanged. An edit, a checkout, a deleted or added-and-imported file,
 * a changed or missing module of the bundle, or an unreadable manifest makes the answer no, and
 * the program loads from its source files instead, so a stale bundle does not run. Like `make`
 * and `rsync`, it trusts that a rewrite changes the size or the modification time: a copy that
 * keeps both (`cp -p`, `rsync -a`, a Docker layer) stays fresh. The check only reads file
 * metadata (about 200 `stat` calls: 2 to 4 ms, and 0.7 MiB of the launcher's memory, in a start).
 *
 * This module imports nothing: main.ts loads it before it knows which program to load.
 *
 * @module
 */

/** The bundle's folder, relative to the program's root (two deep, as src/util/app_dir.ts needs). */
export const BUNDLE_DIR = "dist/bundle";
/** The manifest, relative to the program's root. */
export const MANIFEST_FILE = `${BUNDLE_DIR}/manifest.json`;
/** The manifest's format: a manifest of another format is not fresh. */
export const MANIFEST_FORMAT = 2;

/** A file's path (relative to the root), size and modification time (ms). */
export type Stamp = [path: string, size: number, mtimeMs: number];

/** What `dist/bundle/manifest.json` holds. */
export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  /** Every source file the bundle was built from, then every module of the bundle. */
  files: Stamp[];
}

/** The stamp of `path` (relative to the folder `root`); throws if it cannot be read. */
export function stampOf(root: string, path: string): Stamp {
  const info = Deno.statSync(`${root}/${path}`);
  return [path, info.size, info.mtime?.getTime() ?? -1];
}

function isStamp(value: unknown): value is Stamp {
  return Array.isArray(value) && value.length === 3 && typeof value[0] === "string" &&
    typeof value[1] === "number" && typeof value[2] === "number";
}

/** The manifest under the program's root folder `root`, or `undefined` if missing or not one. */
export function readManifest(root: string): Manifest | undefined {
  let manifest: Partial<Manifest> | null;
  try {
    manifest = JSON.parse(Deno.readTextFileSync(`${root}/${MANIFEST_FILE}`));
  } catch {
    return undefined;
  }
  if (manifest?.format !== MANIFEST_FORMAT || !Array.isArray(manifest.files)) return undefined;
  return manifest as Manifest;
}

/**
 * Whether the bundle under the program's root folder `root` was built from exactly the files
 * there now: false without a manifest, or when any file it lists changed, went or cannot be read.
 */
export function freshBundle(root: string): boolean {
  const files = readManifest(root)?.files ?? [];
  if (!files.every(isStamp) || !files.some(([path]) => path.startsWith(`${BUNDLE_DIR}/`))) {
    return false;
  }
  for (const [path, size, mtime] of files) {
    try {
      const now = stampOf(root, path);
      if (now[1] !== size || now[2] !== mtime) return false;
    } catch {
      return false; // Gone or unreadable.
    }
  }
  return true;
}

/**
 * Whether the module at `moduleUrl` (pass `import.meta.url`) runs from the bundle of the program
 * rooted at `appUrl` (src/util/app_dir.ts), rather than from the source files.
 */
export function isBundledModule(moduleUrl: string, appUrl: URL): boolean {
  return moduleUrl.startsWith(new URL(`${BUNDLE_DIR}/`, appUrl).href);
}
