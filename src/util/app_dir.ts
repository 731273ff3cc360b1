/**
 * Where the program's own files are: the folder holding deno.json, `hooks/`, `src/` and `.git`.
 *
 * It is two folders above this module. The program's bundle (`dist/bundle/`, src/bundle/) also
 * sits two folders below that root, so this module, bundled into it, names the
 * same folder. Every module that reads the program's own files starts from here, never from its
 * own `import.meta.url`, which in the bundle is the bundle's.
 *
 * @module
 */
import { fromFileUrl } from "./path.ts";

/** The program's root folder, as a URL ending in `/`. */
export const APP_URL: URL = new URL("../../", import.meta.url);

/** The program's root folder as a path (no trailing `/`), or `undefined` if not on a file system. */
export function appDir(): string | undefined {
  if (APP_URL.protocol !== "file:") return undefined;
  return fromFileUrl(APP_URL).replace(/\/+$/, "") || "/";
}
