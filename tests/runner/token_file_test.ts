import assert from "node:assert/strict";
import { join } from "node:path";
import { readTokenFile } from "../../src/runner/token_file.ts";

Deno.test("token file: the first line of a 0600 file, and clear refusals otherwise", () => {
  const dir = Deno.makeTempDirSync({ prefix: "arr-token-" });
  try {
    const good = join(dir, "token");
    Deno.writeTextFileSync(good, "s3cret\nignored\n", { mode: 0o600 });
    Deno.chmodSync(good, 0o600);
    assert.equal(readTokenFile(good), "s3cret");

    const open = join(dir, "open");
    Deno.writeTextFileSync(open, "t\n");
    Deno.chmodSync(open, 0o644);
    assert.throws(() => readTokenFile(open), /mode 644: make it 0600/);

    const link = join(dir, "link");
    Deno.symlinkSync(good, link);
    assert.throws(() => readTokenFile(link), /is a symlink/);

    const empty = join(dir, "empty");
    Deno.writeTextFileSync(empty, "\n", { mode: 0o600 });
    Deno.chmodSync(empty, 0o600);
    assert.throws(() => readTokenFile(empty), /is empty/);

    assert.throws(() => readTokenFile(join(dir, "missing")), /does not exist/);
    assert.throws(() => readTokenFile(dir), /not a regular file/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
