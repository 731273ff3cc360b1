import assert from "node:assert/strict";
import * as node from "node:path";
import { pathToFileURL } from "node:url";
import { dirname, fromFileUrl, isAbsolute, join, normalize, resolve } from "../../src/util/mod.ts";

const PATHS = [
  "",
  ".",
  "..",
  "/",
  "//",
  "a",
  "a/",
  "/a",
  "/a/",
  "/a/b",
  "/a/b/",
  "/a//b///",
  "a/b/c",
  "./a",
  "../a",
  "a/../..",
  "/../a",
  "/a/./b/../c",
  "a/b/../../..",
  "/tmp/x y/ü.txt",
  "...",
  ".a/..b/",
];

Deno.test("path: normalize, dirname and isAbsolute agree with node:path's POSIX functions", () => {
  for (const path of PATHS) {
    assert.equal(normalize(path), node.posix.normalize(path), `normalize(${JSON.stringify(path)})`);
    assert.equal(isAbsolute(path), node.posix.isAbsolute(path), `isAbsolute(${path})`);
    if (path.startsWith("//")) continue; // node keeps a leading "//"; nothing here makes one
    assert.equal(dirname(path), node.posix.dirname(path), `dirname(${JSON.stringify(path)})`);
  }
});

Deno.test("path: join and resolve agree with node:path's POSIX functions", () => {
  const pairs: string[][] = [];
  for (const a of PATHS) for (const b of ["", "b", "/b", "../b", "b/", "./"]) pairs.push([a, b]);
  pairs.push([], ["a", "", "b"], ["/x", "y", "..", "z"]);
  for (const parts of pairs) {
    assert.equal(join(...parts), node.posix.join(...parts), `join(${JSON.stringify(parts)})`);
    assert.equal(
      resolve(...parts),
      node.posix.resolve(...parts),
      `resolve(${JSON.stringify(parts)})`,
    );
  }
});

Deno.test("path: fromFileUrl decodes a file URL and refuses any other", () => {
  for (const path of ["/a/b.ts", "/tmp/x y/ü%.ts", "/"]) {
    assert.equal(fromFileUrl(pathToFileURL(path)), path);
    assert.equal(fromFileUrl(pathToFileURL(path).href), path);
  }
  assert.throws(() => fromFileUrl("https://example.invalid/a"), /not a file: URL/);
});
