/**
 * The program's bundle: each entry module (src/entry/mod.ts) with everything it imports, in one
 * module (`dist/bundle/run.js`, ...), which loads in a fraction of the time its source modules
 * take, and the manifest that says whether it still matches the source (docs/performance.md).
 * `deno task build` (scripts/bundle.ts) makes it; main.ts loads it while
 * {@linkcode freshBundle} says it is fresh.
 *
 * @module
 */
export {
  BUNDLE_DIR,
  freshBundle,
  isBundledModule,
  type Manifest,
  MANIFEST_FILE,
  MANIFEST_FORMAT,
  readManifest,
  type Stamp,
  stampOf,
} from "./manifest.ts";
