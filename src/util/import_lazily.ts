/**
 * Modules loaded when the code that needs them runs, not when the program starts.
 *
 * Deno reads every module that a literal `import("./x.ts")` names, and everything that module
 * imports, before the program's first line runs. Each of a start's two isolates (the launcher
 * and the sandbox's Worker) then read the whole program: every command, the reference relay and
 * every provider's adapter, about 150 modules, where a `run` of one provider uses about 100 and
 * the launcher 25. A module imported through {@linkcode importLazily} is read only when the import
 * runs. Two things follow (docs/sandbox.md, docs/performance.md): the sandbox's Worker needs read
 * access to the program's modules, and `deno compile` embeds them by `--include src`.
 *
 * Write each call as `importLazily<typeof import("./x.ts")>("./x.ts", import.meta.url)`, the
 * module named literally: `deno task build` (scripts/bundle.ts) turns exactly that form into a
 * literal `import()` for the bundle, and refuses any other.
 *
 * @module
 */

/**
 * Imports `specifier`, resolved against `base` (pass `import.meta.url`), when called. Name the
 * module's type: `importLazily<typeof import("./x.ts")>("./x.ts", import.meta.url)`.
 */
export function importLazily<T>(specifier: string, base: string | URL): Promise<T> {
  return import(new URL(specifier, base).href);
}
