import assert from "node:assert/strict";
import { join } from "node:path";
import {
  checkNotSymlink,
  chmodNoFollow,
  openNoFollow,
  SymlinkError,
  writeFileNoFollow,
} from "../../src/util/mod.ts";
import { ensureWritableDir } from "../../src/config/mod.ts";
import { runMain, tempDir } from "./support.ts";

const RUN = ["--relay-url", "http://127.0.0.1:1", "--provider", "command", "--", "/bin/cat"];

Deno.test("sandbox paths: the runner creates its dirs 0700", async () => {
  await using home = await tempDir();
  const base = join(home.path, "fresh");
  ensureWritableDir(join(base, "new", "dir"), "state dir");
  assert.equal((await Deno.stat(join(base, "new", "dir"))).mode! & 0o777, 0o700);
  assert.equal((await Deno.stat(join(base, "new"))).mode! & 0o777, 0o700);
});

for (const mode of [0o777, 0o770, 0o722]) {
  Deno.test(`sandbox paths: a ${mode.toString(8)} state dir is refused with exit 2 and one line`, async () => {
    await using home = await tempDir();
    const state = join(home.path, "shared");
    await Deno.mkdir(state);
    await Deno.chmod(state, mode);
    const out = await runMain(["run", "--agent-id", "a", "--state-dir", state, ...RUN], {
      env: { AGENT_RELAY_HOME: home.path },
    });
    assert.equal(out.code, 2, out.stderr);
    assert.equal(
      out.stderr,
      `agent-relay-runner: state dir ${state} is group- or world-writable (mode 0${
        mode.toString(8)
      }): chmod 700 it, or use another dir\n`,
    );
    assert.equal((await Deno.stat(state)).mode! & 0o777, mode, "left as it was, not chmodded");
  });
}

Deno.test("sandbox paths: a log dir owned by another user is refused with exit 2", {
  ignore: Deno.uid() !== 0,
}, async () => {
  await using home = await tempDir();
  const logs = join(home.path, "logs");
  await Deno.mkdir(logs, { mode: 0o700 });
  await Deno.chown(logs, 65534, 65534);
  const out = await runMain(["run", "--agent-id", "a", ...RUN], {
    env: { AGENT_RELAY_HOME: home.path },
  });
  assert.equal(out.code, 2, out.stderr);
  assert.match(
    out.stderr,
    /^agent-relay-runner: log dir \S+ is owned by another user \(uid 65534, this is uid 0\): use a dir of your own\n$/,
  );
});

Deno.test("sandbox paths: a symlink planted at the launcher's pidfile is refused, its target untouched", async () => {
  await using home = await tempDir();
  const state = join(home.path, "state", "a");
  await Deno.mkdir(state, { recursive: true, mode: 0o700 });
  const target = join(home.path, "bashrc");
  await Deno.writeTextFile(target, "keep\n", { mode: 0o644 });
  await Deno.symlink(target, join(state, "runner.pid"));
  const out = await runMain(["run", "--agent-id", "a", ...RUN], {
    env: { AGENT_RELAY_HOME: home.path },
  });
  assert.equal(out.code, 2, out.stderr);
  assert.match(
    out.stderr,
    /^agent-relay-runner: \S+runner\.pid is a symlink: refusing to follow it \(remove it\)\n$/,
  );
  assert.equal(await Deno.readTextFile(target), "keep\n");
  assert.equal((await Deno.stat(target)).mode! & 0o777, 0o644);
});

Deno.test("sandbox paths: the no-follow helpers refuse a symlink and leave its target as it was", async () => {
  await using home = await tempDir();
  const target = join(home.path, "target");
  await Deno.writeTextFile(target, "keep\n", { mode: 0o644 });
  const link = join(home.path, "link");
  await Deno.symlink(target, link);
  assert.throws(() => checkNotSymlink(link), SymlinkError);
  assert.throws(() => openNoFollow(link, { append: true, create: true }), SymlinkError);
  assert.throws(() => writeFileNoFollow(link, "evil"), SymlinkError);
  assert.throws(() => chmodNoFollow(link, 0o600), SymlinkError);
  assert.equal(await Deno.readTextFile(target), "keep\n");
  assert.equal((await Deno.stat(target)).mode! & 0o777, 0o644);
  // A dangling link too: nothing is created at its target.
  const dangling = join(home.path, "dangling");
  await Deno.symlink(join(home.path, "nowhere"), dangling);
  assert.throws(() => openNoFollow(dangling, { write: true, create: true }), SymlinkError);
  await assert.rejects(Deno.stat(join(home.path, "nowhere")), Deno.errors.NotFound);
  // Regular files work.
  const file = join(home.path, "file");
  writeFileNoFollow(file, "one\n", 0o600);
  const handle = openNoFollow(file, { append: true });
  handle.writeSync(new TextEncoder().encode("two\n"));
  handle.close();
  assert.equal(await Deno.readTextFile(file), "one\ntwo\n");
  assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
});
