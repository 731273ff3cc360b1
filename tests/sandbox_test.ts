/**
 * The sandbox a `run` gets: its grants (computed by the launcher's own function), a probe inside
 * the Worker holding them, and the runner's own writes under it. tests/sandbox/ covers the
 * launcher and the Worker in depth.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { APP_DIR } from "../scripts/sandbox.ts";
import { resolveRunConfig } from "../src/config/mod.ts";
import {
  LOOPBACK,
  runGrants,
  sendGrants,
  withProgramModules,
  workerPermissions,
} from "../src/sandbox/mod.ts";
import { withHome } from "./support/home.ts";
import { runSandboxed } from "./support/run_main.ts";

const PROBE = new URL("./fixtures/sandbox_probe.ts", import.meta.url).pathname;

Deno.test("sandbox: a run grants write to its own dirs only, run to its provider only, net to loopback", () => {
  const env = { HOME: "/home/op", PATH: "/usr/bin:/bin" };
  const args = [
    "--agent-id",
    "a",
    "--relay-url",
    "http://127.0.0.1:1",
    "--provider",
    "command",
    "--",
    "/bin/true",
  ];
  const grants = runGrants(resolveRunConfig(args, env), env, { appDir: APP_DIR });
  assert.deepEqual([...grants.write].sort(), [
    "/home/op/.agent-relay/logs",
    "/home/op/.agent-relay/state/a",
    "/home/op/.agent-relay/state/a/outbox",
  ]);
  assert.deepEqual(grants.run, ["/bin/true"]);
  assert.deepEqual(grants.net, [...LOOPBACK]);
});

Deno.test("sandbox: every Worker may read the program's modules, added once and to read only", () => {
  const modules = ["/app/src", "/app/deno.json"];
  const send = withProgramModules(sendGrants(), modules);
  assert.deepEqual(send, { read: modules, write: [], run: [], net: [...LOOPBACK] });
  // A run reads the whole program dir already: nothing is added.
  const run = { read: ["/state", "/app"], write: ["/state"], run: ["/bin/x"], net: [] };
  assert.deepEqual(withProgramModules(run, modules), run);
  // A grant of a look-alike prefix does not cover them.
  assert.deepEqual(withProgramModules({ ...run, read: ["/ap"] }, modules).read, [
    "/ap",
    ...modules,
  ]);
});

Deno.test("sandbox: the Worker holds each grant as a list, and an empty one as none", () => {
  const permissions = workerPermissions({
    read: ["/r"],
    write: [],
    run: ["/bin/true"],
    net: [...LOOPBACK],
    env: ["HOME"],
    sys: [],
  });
  assert.deepEqual(permissions.read, ["/r"]);
  assert.equal(permissions.write, false);
  assert.deepEqual(permissions.run, ["/bin/true"]);
  assert.deepEqual(permissions.net, [...LOOPBACK]);
  assert.notEqual(permissions.ffi, true);
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
      assert.equal(result.inside, "ok");
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
