import assert from "node:assert/strict";
import { join } from "node:path";
import { APP_DIR } from "../../scripts/sandbox.ts";
import { runMain, tempDir } from "./support.ts";

const PROBE = join(import.meta.dirname!, "fixtures", "worker_probe.ts");

/** Runs the probe Worker with a run's paths; returns what it could and could not do. */
async function probe(
  paths: Record<string, unknown>,
  probes: Record<string, string>,
): Promise<Record<string, unknown>> {
  const out = await runMain([JSON.stringify(paths), JSON.stringify(probes)], { script: PROBE });
  assert.equal(out.code, 0, out.stderr);
  return JSON.parse(out.stdout.trim().split("\n").at(-1)!);
}

Deno.test("sandbox worker: read, write, run and net are each refused outside the run's grants", async () => {
  await using home = await tempDir();
  await using outside = await tempDir("arr-sbx-out-");
  const state = join(home.path, "state", "a");
  await Deno.mkdir(join(state, "outbox"), { recursive: true });
  await Deno.writeTextFile(join(outside.path, "secret"), "s3cret");
  const result = await probe({
    provider: "command",
    providerArgs: ["/bin/true"],
    cwd: join(home.path, "work"),
    stateDir: state,
    logDir: join(home.path, "logs"),
    outboxDir: join(state, "outbox"),
    infoFile: join(state, "runner-info.json"),
    tokenFile: undefined,
    appDir: APP_DIR,
  }, {
    inside: join(state, "x"),
    outside: join(outside.path, "x"),
    secret: join(outside.path, "secret"),
    provider: "/bin/true",
  });
  assert.equal(result["writeInside"], "ok");
  assert.match(String(result["writeOutside"]), /^NotCapable: Requires write access/);
  assert.match(String(result["readOutside"]), /^NotCapable: Requires read access/);
  assert.equal(result["runProvider"], "ok");
  assert.match(String(result["runShell"]), /^NotCapable: Requires run access to "\/bin\/sh"/);
  // Refused by the permission check before any lookup: a `.invalid` name cannot resolve.
  assert.match(
    String(result["netRemote"]),
    /^NotCapable: Requires net access to "relay\.example\.invalid:80"/,
  );
  assert.match(String(result["envPath"]), /^NotCapable: Requires env access to "PATH"/);
  const grants = result["grants"] as Record<string, string[]>;
  assert.deepEqual(grants["run"], ["/bin/true"]);
  assert.deepEqual(grants["net"], ["127.0.0.1", "localhost", "[::1]"]);
  assert.ok(
    !grants["read"]!.includes(Deno.env.get("HOME")!),
    "the read grant never holds all of $HOME",
  );
});

Deno.test("sandbox worker: a comma in a dir or provider path stays one path (no wider grant)", async () => {
  await using base = await tempDir();
  // `--state-dir '<base>/x,<base>'` once granted write on all of <base>; `/bin/x,/bin/sh` a shell.
  const state = `${join(base.path, "x")},${base.path}`;
  await Deno.mkdir(join(state, "outbox"), { recursive: true });
  const result = await probe({
    provider: "command",
    providerArgs: ["/bin/x,/bin/sh"],
    cwd: state,
    stateDir: state,
    logDir: state,
    outboxDir: join(state, "outbox"),
    infoFile: join(state, "runner-info.json"),
    tokenFile: undefined,
    appDir: APP_DIR,
  }, {
    inside: join(state, "y"),
    outside: join(base.path, "y"),
    secret: join(base.path, "y"),
    provider: "/bin/x,/bin/sh",
  });
  assert.equal(result["writeInside"], "ok");
  assert.match(String(result["writeOutside"]), /^NotCapable: Requires write access/);
  assert.match(String(result["runShell"]), /^NotCapable: Requires run access to "\/bin\/sh"/);
  const grants = result["grants"] as Record<string, string[]>;
  assert.deepEqual(grants["run"], ["/bin/x,/bin/sh"]);
  assert.ok(grants["write"]!.includes(state));
  assert.ok(!grants["write"]!.includes(base.path));
});

Deno.test("sandbox worker: space and unicode paths are granted as they are", async () => {
  await using base = await tempDir();
  const state = join(base.path, "état d'agent ☃");
  await Deno.mkdir(join(state, "outbox"), { recursive: true });
  const result = await probe({
    provider: "command",
    providerArgs: ["/bin/true"],
    cwd: state,
    stateDir: state,
    logDir: state,
    outboxDir: join(state, "outbox"),
    infoFile: join(state, "runner-info.json"),
    tokenFile: undefined,
    appDir: APP_DIR,
  }, {
    inside: join(state, "outbox", "y"),
    outside: join(base.path, "y"),
    secret: join(base.path, "y"),
    provider: "/bin/true",
  });
  assert.equal(result["writeInside"], "ok");
  assert.match(String(result["writeOutside"]), /^NotCapable: Requires write access/);
});
