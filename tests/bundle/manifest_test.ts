import assert from "node:assert/strict";
import { join } from "node:path";
import {
  BUNDLE_DIR,
  freshBundle,
  isBundledModule,
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
  "freshBundle: a rewrite of the same size makes it stale (its modification time moves)",
  withRoot(async (root) => {
    const file = join(root, "src", "a.ts");
    const before = Deno.statSync(file).mtime?.getTime();
    await new Promise((resolve) => setTimeout(resolve, 5));
    Deno.writeTextFileSync(file, "export const b = 1;\n"); // the same length
    assert.notEqual(Deno.statSync(file).mtime?.getTime(), before);
    assert.equal(freshBundle(root), false);
  }),
);

Deno.test(
  "freshBundle: only a new modification time makes it stale",
  withRoot((root) => {
    const file = join(root, "src", "a.ts");
    const later = new Date((Deno.statSync(file).mtime?.getTime() ?? 0) + 5_000);
    Deno.utimeSync(file, later, later);
    assert.equal(freshBundle(root), false);
  }),
);

Deno.test(
  "freshBundle: a copy that keeps sizes and times (cp -a, a Docker layer) stays fresh",
  withRoot(async (root) => {
    const copy = `${root}-copy`;
    try {
      const out = await new Deno.Command("cp", { args: ["-a", root, copy] }).output();
      assert.equal(out.code, 0);
      assert.equal(freshBundle(copy), true);
    } finally {
      Deno.removeSync(copy, { recursive: true });
    }
  }),
);

Deno.test(
  "freshBundle: a deleted source file makes it stale",
  withRoot((root) => {
    Deno.removeSync(join(root, "src", "a.ts"));
    assert.equal(freshBundle(root), false);
  }),
);

Deno.test(
  "freshBundle: a deleted module of the bundle makes it stale",
  withRoot((root) => {
    Deno.removeSync(join(root, BUNDLE_DIR, "run.js"));
    assert.equal(freshBundle(root), false);
  }),
);

Deno.test(
  "freshBundle: no manifest, an unreadable one, or one of another format is not fresh",
  withRoot((root) => {
    const path = join(root, MANIFEST_FILE);
    for (const text of ["", "not json", "null", "[]", '{"format":1,"files":[]}']) {
      Deno.writeTextFileSync(path, text);
      assert.equal(freshBundle(root), false, text);
    }
    const good = JSON.parse(JSON.stringify({ format: MANIFEST_FORMAT, files: [] }));
    good.files.push(["src/a.ts", "12", 0], [`${BUNDLE_DIR}/run.js`, 0, 0]);
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

Deno.test("isBundledModule: only a module inside the root's dist/bundle/ is bundled", () => {
  const app = new URL("file:///srv/app/");
  assert.equal(isBundledModule("file:///srv/app/dist/bundle/run.js", app), true);
  assert.equal(isBundledModule("file:///srv/app/src/cli/build_info.ts", app), false);
  assert.equal(isBundledModule("file:///home/x/dist/bundle/app/src/cli/main.ts", app), false);
});
