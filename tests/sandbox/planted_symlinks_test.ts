/**
 * A symlink planted at every file the runner writes (issue: "symlinks inside the dirs are
 * followed"): the run refuses it with one line naming the file, and the link's target is left
 * exactly as it was (content and mode). Files written only later in a run (the saved session id,
 * the hook plugin) are checked through the functions that write them.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { writePlugin } from "../../src/adapters/mod.ts";
import { saveSession } from "../../src/runner/session_store.ts";
import { runMain, tempDir } from "./support.ts";

const RUN = ["--relay-url", "http://127.0.0.1:1", "--provider", "command", "--", "/bin/cat"];

/** A file outside the runner's dirs that a planted link points at. */
async function victim(dir: string): Promise<string> {
  const target = join(dir, "bashrc");
  await Deno.writeTextFile(target, "keep\n");
  await Deno.chmod(target, 0o644);
  return target;
}

async function untouched(target: string): Promise<void> {
  assert.equal(await Deno.readTextFile(target), "keep\n", "the target's content");
  assert.equal((await Deno.stat(target)).mode! & 0o777, 0o644, "the target's mode");
}

const PLANTED: Array<[string, (home: string) => string]> = [
  ["the log file", (h) => join(h, "logs", "session-mirror-a.log")],
  ["the outbox", (h) => join(h, "state", "a", "outbox", "outbox.sqlite")],
  ["the outbox's WAL", (h) => join(h, "state", "a", "outbox", "outbox.sqlite-wal")],
  ["the outbox's lock", (h) => join(h, "state", "a", "outbox", "outbox.sqlite.lock")],
  ["the runner-info file", (h) => join(h, "state", "a", "runner-info.json")],
  ["the control secret", (h) => join(h, "state", "a", "control-secret")],
];

for (const [what, where] of PLANTED) {
  Deno.test(`planted symlinks: at ${what}: refused with one line, the target untouched`, async () => {
    await using home = await tempDir();
    const target = await victim(home.path);
    const link = where(home.path);
    await Deno.mkdir(join(link, ".."), { recursive: true, mode: 0o700 });
    await Deno.symlink(target, link);
    const out = await runMain(["run", "--agent-id", "a", ...RUN], {
      env: { AGENT_RELAY_HOME: home.path },
    });
    assert.equal(out.code, 2, out.stderr);
    assert.match(out.stderr, /symlink/, out.stderr);
    assert.ok(out.stderr.includes(link.split("/").at(-1)!), out.stderr);
    await untouched(target);
    assert.ok((await Deno.lstat(link)).isSymlink, "the link is left for the operator to see");
  });
}

Deno.test("planted symlinks: the saved session id and the hook plugin refuse a link", async () => {
  await using home = await tempDir();
  const target = await victim(home.path);
  const state = join(home.path, "state");
  await Deno.mkdir(state, { mode: 0o700 });
  await Deno.symlink(target, join(state, "provider-session.json"));
  assert.throws(() => saveSession(state, "claude", "s-1"), /symlink/);
  await untouched(target);

  const elsewhere = join(home.path, "elsewhere");
  await Deno.mkdir(elsewhere);
  await Deno.writeTextFile(join(elsewhere, "keep.txt"), "keep\n");
  await Deno.symlink(elsewhere, join(state, "claude-plugin"));
  await assert.rejects(writePlugin(state), /symlink/);
  assert.equal(await Deno.readTextFile(join(elsewhere, "keep.txt")), "keep\n");
});
