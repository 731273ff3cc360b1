import assert from "node:assert/strict";
import { join } from "node:path";
import {
  BUNDLE_DIR,
  freshBundle,
  type Manifest,
  MANIFEST_FILE,
  MANIFEST_FORMAT,
  stampOf,
} from "../../src/bundle/mod.ts";

/** A program root with two source files, one bundled module and a manifest naming all three. */
function builtRoot(): string {
  const root = Deno.makeTempDirSync({ prefix: "bundle-manifest-" });
  Deno.mkdirSync(join(root, "src"), { recursive: true });
  Deno.mkdirSync(join(root, BUNDLE_DIR), { recursive: true });
  Deno.writeTextFileSync(join(root, "src", "a.ts"), "export const a = 1;\n");
  Deno.writeTextFileSync(join(root, "deno.json"), "{}\n");
  Deno.writeTextFileSync(join(root, BUNDLE_DIR, "run.js"), "export{};\n");
  writeManifest(root, ["deno.json", "src/a.ts", `${BUNDLE_DIR}/run.js`]);
  return root;
}

function writeManifest(root: string, paths: string[]): void {
  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    files: paths.map((path) => stampOf(root, path)),
  };
  Deno.writeTextFileSync(join(root, MANIFEST_FILE), JSON.stringify(manifest));
}

function withRoot(test: (root: string) => void | Promise<void>): () => Promise<void> {
  return async () => {
    const root = builtRoot();
    try {
      await test(root);
    } finally {
      Deno.removeSync(root, { recursive: true });
    }
  };
}

Deno.test(
  "freshBundle: fresh while every listed file is as it was built",
  withRoot((root) => assert.equal(freshBundle(root), true)),
);

Deno.test(
  "freshBundle: an edited source file makes it stale",
  withRoot((root) => {
    Deno.writeTextFileSync(join(root, "src", "a.ts"), "// edited\n", { append: true });
    assert.equal(freshBundle(root), false);
  }),
);

Deno.test(
  "freshBundle: a rewrite with the same size, or only a new time, makes it stale",
  withRoot((root) => {
    const file = join(root, "src", "a.ts");
    const before = Deno.statSync(file);
    Deno.writeTextFileSync(file, "export const b = 1;\n"); // same length
    const later = new Date((before.mtime?.getTime() ?? 0) + 5_000);
    Deno.utimeSync(file, later, later);
    assert.equal(freshBundle(root), false);
  }),
);

Deno.test(
  "freshBundle: a restored modification time does not hide a rewrite (the change time differs)",
  withRoot(async (root) => {
    const file = join(root, "src", "a.ts");
    const before = Deno.statSync(file);
    // Change times read with a second's resolution here: wait past it so the rewrite shows.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    Deno.writeTextFileSync(file, "export const b = 1;\n");
    Deno.utimeSync(file, before.atime!, before.mtime!);
    assert.equal(Deno.statSync(file).mtime?.getTime(), before.mtime?.getTime());
    assert.equal(freshBundle(root), false);
  }),
);

Deno.test(
  "freshBundle: a deleted source file or bundled module makes it stale",
  withRoot((root) => {
    Deno.removeSync(join(root, BUNDLE_DIR, "run.js"));
    assert.equal(freshBundle(root), false);
  }),
);

Deno.test(
  "freshBundle: no manifest, an unreadable one, or one of another format is not fresh",
  withRoot((root) => {
    const path = join(root, MANIFEST_FILE);
    for (const text of ["", "not json", "null", "[]", '{"format":2,"files":[]}']) {
      Deno.writeTextFileSync(path, text);
      assert.equal(freshBundle(root), false, text);
    }
    const good = JSON.parse(JSON.stringify({ format: MANIFEST_FORMAT, files: [] }));
    good.files.push(["src/a.ts", "12", 0, 0], [`${BUNDLE_DIR}/run.js`, 0, 0, 0]);
    Deno.writeTextFileSync(path, JSON.stringify(good));
    assert.equal(freshBundle(root), false, "a stamp with a string size");
    Deno.removeSync(path);
    assert.equal(freshBundle(root), false, "no manifest");
  }),
);

Deno.test(
  "freshBundle: a manifest that lists no bundled module is not fresh",
  withRoot((root) => {
    writeManifest(root, ["deno.json", "src/a.ts"]);
    assert.equal(freshBundle(root), false);
  }),
);
