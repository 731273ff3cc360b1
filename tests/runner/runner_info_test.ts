import assert from "node:assert/strict";
import { join } from "node:path";
import { removeRunnerInfo, writeRunnerInfo } from "../../src/runner/runner_info.ts";
import { clearSession, loadSession, saveSession } from "../../src/runner/session_store.ts";
import { withHome } from "../support/home.ts";

Deno.test("runner info: written atomically with mode 0600, removed only by its owner", async () => {
  await withHome("arr-info-", async (dir) => {
    const path = join(dir, "runner-info.json");
    const info = {
      pid: Deno.pid,
      agentId: "a",
      provider: "command" as const,
      controlPort: 4321,
      version: "0.1.0",
      startedAt: new Date(0).toISOString(),
      logFile: "/l",
      outboxPath: "/o",
      stateDir: dir,
    };
    writeRunnerInfo(path, info);
    assert.deepEqual(JSON.parse(await Deno.readTextFile(path)), info);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["runner-info.json"]);
    writeRunnerInfo(path, { ...info, pid: Deno.pid + 1 });
    await removeRunnerInfo(path);
    assert.ok(await Deno.stat(path), "another process's file is left alone");
    writeRunnerInfo(path, info);
    await removeRunnerInfo(path);
    await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
  });
});

Deno.test("runner info: a failed write names the file and leaves no temp file", async () => {
  await withHome("arr-info-", async (dir) => {
    assert.throws(
      () => writeRunnerInfo(join(dir, "missing", "info.json"), {} as never),
      /Writing the runner-info file .*missing\/info\.json failed/,
    );
    assert.deepEqual(await Array.fromAsync(Deno.readDir(dir)), []);
  });
});

Deno.test("session store: saves, loads per provider, and clears", async () => {
  await withHome("arr-info-", async (dir) => {
    assert.equal(loadSession(dir, "claude"), undefined);
    saveSession(dir, "claude", "sess-1");
    assert.equal(loadSession(dir, "claude"), "sess-1");
    assert.equal(loadSession(dir, "codex"), undefined);
    assert.equal((await Deno.stat(join(dir, "provider-session.json"))).mode! & 0o777, 0o600);
    clearSession(dir);
    assert.equal(loadSession(dir, "claude"), undefined);
    await Deno.writeTextFile(join(dir, "provider-session.json"), "{garbage");
    assert.equal(loadSession(dir, "claude"), undefined);
  });
});
