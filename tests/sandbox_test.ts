import assert from "node:assert/strict";
import { join } from "node:path";
import { expand, loadPermissionSet, permissionFlags, varsFor } from "../scripts/sandbox.ts";
import { ENV_VARS } from "../src/config/env.ts";
import { withHome } from "./support/home.ts";
import { runSandboxed } from "./support/run_main.ts";

const PROBE = new URL("./fixtures/sandbox_probe.ts", import.meta.url).pathname;

Deno.test("sandbox: the permission set grants env access to exactly the variables the runner reads", () => {
  const set = loadPermissionSet();
  assert.deepEqual([...(set.env as string[])].sort(), [...ENV_VARS].sort());
  assert.deepEqual(set.net, ["127.0.0.1", "localhost", "[::1]"]);
});

Deno.test("sandbox: unset placeholders drop the entry instead of widening it", () => {
  assert.equal(expand("${STATE_DIR}/x", {}), undefined);
  assert.equal(expand("${STATE_DIR}/x", { STATE_DIR: "/s" }), "/s/x");
  const flags = permissionFlags({ write: ["${A}", "${B}"], run: ["${C}"] }, { A: "/a" });
  assert.deepEqual(flags, ["--allow-write=/a", "--no-prompt"]);
});

Deno.test("sandbox: a run grants write to its own dirs only, and run to its provider only", () => {
  const env = { HOME: "/home/op", PATH: "/usr/bin:/bin" };
  const vars = varsFor(
    [
      "run",
      "--agent-id",
      "a",
      "--relay-url",
      "http://127.0.0.1:1",
      "--provider",
      "command",
      "--",
      "/bin/true",
    ],
    env,
  );
  const flags = permissionFlags(loadPermissionSet(), vars);
  const write = flags.find((f) => f.startsWith("--allow-write="))!;
  assert.deepEqual(write.slice("--allow-write=".length).split(",").sort(), [
    "/home/op/.agent-relay/logs",
    "/home/op/.agent-relay/state/a",
    "/home/op/.agent-relay/state/a/outbox",
  ]);
  assert.ok(flags.includes("--allow-run=/bin/true"), flags.join(" "));
  assert.ok(
    !flags.some((f) => f === "--allow-all" || f === "--allow-write" || f === "--allow-net"),
  );
});

Deno.test("sandbox: refuses non-loopback hosts, writes outside its dirs and other programs", async () => {
  await withHome("arr-sbx-", async (home) => {
    await withHome("arr-sbx-out-", async (outside) => {
      const args = [
        "run",
        "--agent-id",
        "probe",
        "--relay-url",
        "http://127.0.0.1:1",
        "--provider",
        "command",
        "--",
        "/bin/true",
      ];
      const inside = join(home, "state", "probe", "sub");
      const out = await runSandboxed([...args, join(outside, "x"), inside], {
        script: PROBE,
        env: { AGENT_RELAY_HOME: home },
      });
      assert.equal(out.code, 0, out.stderr);
      const result = JSON.parse(out.stdout.trim().split("\n").at(-1)!);
      // (a) refused by the permission check before any lookup: a `.invalid` name cannot resolve.
      assert.match(result.net, /^NotCapable: Requires net access to "relay\.example\.invalid:80"/);
      // (b) a clear error naming the dir and the cause.
      assert.match(
        result.write,
        /^DirError: state dir .*\/x is not writable: the sandbox does not grant write access/,
      );
      assert.match(result.run, /^NotCapable: Requires run access to "ls"/);
      // (c) its own state dir is fine.
      assert.equal(result.inside, "written");
    });
  });
});

Deno.test("sandbox: the runner writes its log and state under the sandbox", async () => {
  await withHome("arr-sbx-", async (home) => {
    const out = await runSandboxed(
      ["run", "--agent-id", "writer", "--relay-url", "http://127.0.0.1:1", "--log-level", "debug"],
      { env: { AGENT_RELAY_HOME: home } },
    );
    assert.equal(out.stderr.includes("NotCapable"), false, out.stderr);
    const log = await Deno.readTextFile(join(home, "logs", "session-mirror-writer.log"));
    assert.match(log, /INFO {2}\[runner\] agent-relay-runner .* starting agent writer/);
    assert.equal((await Deno.stat(join(home, "state", "writer"))).mode! & 0o777, 0o700);
    assert.equal(
      (await Deno.stat(join(home, "logs", "session-mirror-writer.log"))).mode! & 0o777,
      0o600,
    );
  });
});
