/**
 * The layout's rules, checked on the source itself: one folder per subsystem behind its `mod.ts`,
 * dependencies that point one way, no import cycles, small files, and no links out of the
 * repository.
 *
 * @module
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SRC = join(ROOT, "src");

function walk(dir: string, accept: (path: string) => boolean): string[] {
  const out: string[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) out.push(...walk(path, accept));
    else if (accept(path)) out.push(path);
  }
  return out.sort();
}

const isTs = (path: string) => path.endsWith(".ts");
const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)["'](\.{1,2}\/[^"']+)["']/g;

/** The relative imports of `file` (static, dynamic and type-only), as absolute paths. */
function importsOf(file: string): string[] {
  const text = Deno.readTextFileSync(file);
  return [...text.matchAll(IMPORT)].map((m) => resolve(dirname(file), m[1]!));
}

/** The subsystem folder of a file under src/, or undefined for a file directly in src/. */
function folderOf(file: string): string | undefined {
  const parts = relative(SRC, file).split("/");
  return parts.length > 1 ? parts[0] : undefined;
}

const rel = (path: string) => relative(ROOT, path);
const srcFiles = walk(SRC, isTs);

Deno.test("architecture: no import cycles in src/", () => {
  const graph = new Map(srcFiles.map((f) => [f, importsOf(f).filter((t) => t.startsWith(SRC))]));
  const cycles: string[] = [];
  const state = new Map<string, "visiting" | "done">();
  const stack: string[] = [];
  const visit = (file: string) => {
    state.set(file, "visiting");
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === "visiting") {
        cycles.push([...stack.slice(stack.indexOf(next)), next].map(rel).join(" → "));
      } else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(file, "done");
  };
  for (const file of srcFiles) if (!state.has(file)) visit(file);
  assertEquals(cycles, []);
});

Deno.test("architecture: no file in src/ is over 600 lines", () => {
  const long = srcFiles
    .map((f) => ({ file: rel(f), lines: Deno.readTextFileSync(f).split("\n").length - 1 }))
    .filter((f) => f.lines > 600);
  assertEquals(long, []);
});

Deno.test("architecture: at most 6 files directly in src/, every folder has a mod.ts", () => {
  const top = srcFiles.filter((f) => folderOf(f) === undefined).map(rel);
  assertEquals(top.length <= 6, true, `files directly in src/: ${top.join(", ")}`);
  const folders = [...new Set(srcFiles.map(folderOf).filter((f) => f !== undefined))];
  const withoutMod = folders.filter((f) => !srcFiles.includes(join(SRC, f!, "mod.ts")));
  assertEquals(withoutMod, []);
});

Deno.test("architecture: a folder is entered through its mod.ts, and core code never imports the CLI", () => {
  const wrong: string[] = [];
  for (const file of srcFiles) {
    const own = folderOf(file);
    for (const target of importsOf(file)) {
      if (!target.startsWith(SRC)) continue;
      const theirs = folderOf(target);
      if (theirs === undefined || theirs === own) continue;
      // src/entry/ is the program's composition root: each Worker entry loads its one command.
      if (own === "entry" && theirs === "cli") continue;
      if (theirs === "cli") wrong.push(`${rel(file)} imports the CLI (${rel(target)})`);
      else if (!target.endsWith("/mod.ts")) wrong.push(`${rel(file)} → ${rel(target)}`);
    }
  }
  assertEquals(wrong, []);
});

Deno.test("architecture: scripts/ and bench/ never import tests/", () => {
  const wrong = [...walk(join(ROOT, "scripts"), isTs), ...walk(join(ROOT, "bench"), isTs)]
    .flatMap((f) => importsOf(f).filter((t) => t.startsWith(join(ROOT, "tests"))).map(rel));
  assertEquals(wrong, []);
});

Deno.test("architecture: every source file says what it owns in a @module JSDoc", () => {
  const missing = srcFiles.filter((f) => !Deno.readTextFileSync(f).includes("@module")).map(rel);
  assertEquals(missing, []);
});

Deno.test("architecture: nothing in the repository links to ../shared/", () => {
  const accept = (path: string) => /\.(ts|md|sh|json)$/.test(path);
  const places = ["README.md", "main.ts", "docs", "src", "hooks", "scripts", "bench", "examples"]
    .map((p) => join(ROOT, p))
    .flatMap((p) => Deno.statSync(p).isDirectory ? walk(p, accept) : [p]);
  const links = places.filter((f) => Deno.readTextFileSync(f).includes("../shared/")).map(rel);
  assertEquals(links, []);
});

const programFiles = [join(ROOT, "main.ts"), ...srcFiles];

Deno.test("architecture: no module is imported by a literal import(), which Deno reads at every start", () => {
  // Deno reads the module a literal `import("./x.ts")` names (and all it imports) before the
  // program's first line runs; src/util/import_lazily.ts loads it when the code runs instead.
  // `typeof import("./x.ts")` names a type only and is erased.
  const literal = /(?<!typeof\s*)\bimport\s*\(\s*["'`]/;
  const found = programFiles.flatMap((file) =>
    Deno.readTextFileSync(file).split("\n").flatMap((line, i) =>
      literal.test(line) && !/^\s*(\*|\/\/)/.test(line) ? [`${rel(file)}:${i + 1}`] : []
    )
  );
  assertEquals(found, []);
});

Deno.test("architecture: no node: module but node:sqlite (the bundle loads a module's node: imports at start)", () => {
  // A bundle hoists every `node:` import to its top, so each one runs in every isolate that
  // loads the bundle; most load Deno's Node layer, which costs megabytes and milliseconds
  // (docs/performance.md). node:sqlite does not.
  const found = programFiles.flatMap((file) =>
    [...Deno.readTextFileSync(file).matchAll(/["'](node:[a-z_/]+)["']/g)]
      .map((m) => m[1]!)
      .filter((name) => name !== "node:sqlite")
      .map((name) => `${rel(file)}: ${name}`)
  );
  assertEquals(found, []);
});

Deno.test("architecture: the program's source is printable ASCII (V8 keeps other source at two bytes a character)", () => {
  const found = programFiles.flatMap((file) =>
    Deno.readTextFileSync(file).split("\n").flatMap((line, i) =>
      /[^\t\n\r -~]/.test(line) ? [`${rel(file)}:${i + 1}`] : []
    )
  );
  assertEquals(found, []);
});

Deno.test("architecture: the bench runs its in-process parts with the program's V8 flags", () => {
  // The drain and hook figures are measured in the bench's own process: they must be what the
  // program's flags (deno.json's start task) give.
  const tasks = JSON.parse(Deno.readTextFileSync(join(ROOT, "deno.json"))).tasks;
  const v8 = (task: string) => /--v8-flags=\S+/.exec(task)?.[0];
  assertEquals(v8(tasks.bench), v8(tasks.start));
});
