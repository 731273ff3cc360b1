/**
 * The bundle's manifest: which source files the bundle was built from, and whether it still
 * matches them.
 *
 * `deno task build` writes the bundle, `dist/bundle/` (one module per entry: src/entry/mod.ts),
 * and then `dist/bundle/manifest.json`: the size, modification time and change time of every
 * file it was built from, and of each entry module. At each start main.ts asks
 * {@linkcode freshBundle} whether every one of those files is unchanged. An edit, a checkout, a deleted file, a changed
 * or missing bundle, or an unreadable manifest makes the answer no, and the program loads from
 * its source files instead: a stale bundle never runs. The check only reads file metadata
 * (about 170 `stat` calls: 2 to 3 ms, and 0.5 MiB of garbage, in a start).
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
export const MANIFEST_FORMAT = 1;

/** A file's path (relative to the root), size, modification time and change time (ms). */
export type Stamp = [path: string, size: number, mtimeMs: number, ctimeMs: number];

/** What `dist/bundle/manifest.json` holds. */
export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  /** Every source file the bundle was built from, then each entry module of the bundle. */
  files: Stamp[];
}

/** The stamp of `path` (relative to the folder `root`); throws if it cannot be read. */
export function stampOf(root: string, path: string): Stamp {
  const info = Deno.statSync(`${root}/${path}`);
  return [path, info.size, info.mtime?.getTime() ?? -1, info.ctime?.getTime() ?? -1];
}

function isStamp(value: unknown): value is Stamp {
  return Array.isArray(value) && value.length === 4 && typeof value[0] === "string" &&
    typeof value[1] === "number" && typeof value[2] === "number" && typeof value[3] === "number";
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
  for (const [path, size, mtime, ctime] of files) {
    try {
      const now = stampOf(root, path);
      if (now[1] !== size || now[2] !== mtime || now[3] !== ctime) return false;
    } catch {
      return false; // Gone or unreadable.
    }
  }
  return true;
}
