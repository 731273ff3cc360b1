/**
 * Hardening: proof of the sandbox (issue 9), extending tests/sandbox_test.ts (which covers a
 * `fetch` to a `.invalid` host, one write outside and running `ls`): every other way out a
 * runner could try, under the exact permission set a real run gets; then, with a real runner,
 * that no secret reaches a log, an error, the runner-info file or `/status`, and the modes of
 * every file and dir it creates.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { APP_DIR } from "../../scripts/sandbox.ts";
import { startDevRelay } from "../../src/dev_relay/mod.ts";
import { Outbox } from "../../src/outbox/outbox.ts";
import type { Message } from "../../src/types.ts";
import { readControl, streamAgent } from "../support/agents.ts";
import { withHome } from "../support/home.ts";
import { Poster, replies } from "../support/relay_messages.ts";
import { runSandboxed } from "../support/run_main.ts";
import { startRunner } from "../support/runner_process.ts";
import { renewedTokens } from "../support/stores.ts";
import { waitFor } from "../support/wait.ts";

const PROBE = new URL("./support/sandbox_probe.ts", import.meta.url).pathname;

Deno.test("hardening: the sandbox refuses every other way out, before any packet or write", async () => {
  const home = await Deno.makeTempDir({ prefix: "arr-sbx-" });
  const outside = await Deno.makeTempDir({ prefix: "arr-sbx-out-" });
  await Deno.writeTextFile(join(outside, "keep"), "operator data");
  const stateDir = join(home, "state", "probe");
  await Deno.mkdir(stateDir, { recursive: true, mode: 0o700 });
  // Someone who can already write in the state dir (the same user) plants a link out of it.
  const linked = await Deno.makeTempDir({ prefix: "arr-sbx-linked-" });
  const plantedLink = join(stateDir, "planted");
  await Deno.symlink(linked, plantedLink);
  const redirect = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () =>
      new Response(null, { status: 302, headers: { location: "http://relay.example.invalid/" } }),
  );
  try {
    const input = {
      outside,
      stateDir,
      plantedLink,
      appDir: APP_DIR,
      home: Deno.env.get("HOME") ?? "/root",
      redirectPort: redirect.addr.port,
      pid: Deno.pid,
      command: "/bin/true",
    };
    const out = await runSandboxed([
      "run",
      "--agent-id",
      "probe",
      "--relay-url",
      "http://127.0.0.1:1",
      "--provider",
      "command",
      "--",
      "/bin/true",
      JSON.stringify(input),
    ], { script: PROBE, env: { AGENT_RELAY_HOME: home, OPERATOR_SECRET: "s3cret" } });
    assert.equal(out.code, 0, out.stderr);
    const result = JSON.parse(out.stdout.trim().split("\n").at(-1)!) as Record<string, string>;
    // A documented limit (docs/reliability.md): Deno checks the path as written, so a symlink
    // planted inside a granted dir is followed. The runner cannot make one itself (refused
    // above as "symlink out"), and its dirs are 0700.
    assert.equal(result["write via planted link"], "ok");
    assert.equal(await Deno.readTextFile(join(linked, "x")), "x");
    delete result["write via planted link"];
    const refused = Object.entries(result).filter(([k]) => !k.startsWith("allowed"));
    const notRefused = refused.filter(([, v]) => !v.startsWith("NotCapable: "));
    // deno-lint-ignore no-console
    if (notRefused.length > 0) console.error(JSON.stringify(result, null, 2));
    assert.deepEqual(notRefused, [], "each attempt is refused by the permission check itself");
    assert.ok(refused.length >= 30, `only ${refused.length} attempts`);
    for (const [k, v] of Object.entries(result).filter(([k]) => k.startsWith("allowed"))) {
      assert.equal(v, "ok", `${k}: ${v}`);
    }
    // Named destinations in the refusals: nothing was resolved or sent first.
    assert.match(result["connect .invalid"]!, /relay\.example\.invalid:80/);
    assert.match(result["fetch redirected to .invalid"]!, /relay\.example\.invalid/);
    // A DNS lookup is refused for the name server's address, before the query is sent.
    assert.match(result["resolveDns"]!, /Requires net access to "[^"]+:53"/);
    // Nothing changed outside.
    assert.deepEqual([...Deno.readDirSync(outside)].map((e) => e.name), ["keep"]);
    assert.equal(await Deno.readTextFile(join(outside, "keep")), "operator data");
    assert.equal((await Deno.stat(join(outside, "keep"))).mode! & 0o777, 0o644);
  } finally {
    await redirect.shutdown();
    await Deno.remove(home, { recursive: true });
    await Deno.remove(outside, { recursive: true });
    await Deno.remove(linked, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Secrets and modes, with a real runner

async function walk(dir: string): Promise<Array<{ path: string; mode: number; isDir: boolean }>> {
  const out: Array<{ path: string; mode: number; isDir: boolean }> = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    const stat = await Deno.lstat(path);
    out.push({ path, mode: stat.mode! & 0o777, isDir: stat.isDirectory });
    if (stat.isDirectory) out.push(...await walk(path));
  }
  return out;
}

async function readAll(dir: string): Promise<string> {
  let text = "";
  for (const entry of await walk(dir)) {
    if (!entry.isDir) text += new TextDecoder("latin1").decode(await Deno.readFile(entry.path));
  }
  return text;
}

Deno.test("hardening: no secret in logs, errors, output, the runner-info file, /status, the relay or the outbox; files 0600, dirs 0700", async () => {
  const home = await Deno.makeTempDir({ prefix: "arr-secrets-" });
  const agentCwd = join(home, "agent");
  await Deno.mkdir(agentCwd);
  const dbPath = join(home, "relay.sqlite");
  const rootToken = `root-${crypto.randomUUID()}`;
  const relay = await startDevRelay({ port: 0, token: rootToken, dbPath });
  const agentId = "secretive";
  const runner = startRunner(relay, {
    agentId,
    home,
    cwd: agentCwd,
    providerArgs: streamAgent({ fatal: true }),
  });
  const texts: Record<string, string> = {};
  try {
    const info = await runner.info();
    const infoFile = join(runner.stateDir, "runner-info.json");
    texts["runner-info file"] = await Deno.readTextFile(infoFile);
    const { port, secret } = await readControl(agentCwd);
    assert.equal(info["controlPort"], port);
    const poster = new Poster(relay);
    const answered = (m: Message) =>
      waitFor(
        `the reply to #${m.id}`,
        () => replies(relay).some((r) => r.replyTo === m.id),
      );

    // Replies, then every way the token changes: all expired, an auth error frame, 401s.
    await answered(await poster.post(agentId, "one", { retryForMs: 5_000 }));
    relay.admin.expireTokens();
    await answered(await poster.post(agentId, "two", { retryForMs: 10_000 }));
    relay.admin.sendError(agentId, "token_expired", "your token expired", { close: true });
    await relay.admin.setFaults({ failStatus: 401, failCount: 4 });
    await answered(await poster.post(agentId, "three", { retryForMs: 10_000 }));

    // The control server, with and without the secret, good and bad requests.
    const base = `http://127.0.0.1:${port}`;
    const call = async (path: string, init: RequestInit = {}, auth = `Bearer ${secret}`) => {
      const res = await fetch(`${base}${path}`, {
        ...init,
        headers: { authorization: auth, "content-type": "application/json" },
      });
      texts[
        `${init.method ?? "GET"} ${path} (${
          auth === `Bearer ${secret}` ? "secret" : auth.slice(0, 12)
        })`
      ] = await res.text();
      return res.status;
    };
    for (const path of ["/status", "/metrics", "/reply-obligations", "/log-level", "/health"]) {
      assert.equal(await call(path), 200, path);
      assert.equal(await call(path, {}, `Bearer ${rootToken}`), path === "/health" ? 200 : 401);
      assert.equal(
        await call(path, {}, `Bearer ${secret.slice(0, -1)}`),
        path === "/health" ? 200 : 401,
      );
    }
    // The command provider uses no hooks: refused before the body is read.
    assert.equal(await call("/hooks/stop", { method: "POST", body: `{"x":"${secret}"` }), 409);
    assert.equal(
      await call("/log-level", { method: "POST", body: JSON.stringify({ level: secret }) }),
      400,
    );
    assert.equal(
      await call("/status", { method: "POST", body: JSON.stringify({ status: rootToken }) }),
      400,
    );
    // A hook that failed while echoing both secrets (a careless script): the report is kept,
    // the secrets are not.
    assert.equal(
      await call("/hook-fatal", {
        method: "POST",
        body: JSON.stringify({
          hook: `stop ${secret}`,
          error: `curl -H "Authorization: Bearer ${secret}" failed; AGENT_RELAY_TOKEN=${rootToken}`,
        }),
      }),
      200,
    );
    await waitFor(
      "the hook_fatal insight",
      () =>
        relay.admin.state().insights.some((i) =>
          i.signal === "hook_fatal" && JSON.stringify(i.value).includes("failed;")
        ),
    );

    // Modes while running (the info file and the secret file go away at stop).
    const modes = await walk(runner.stateDir);
    assert.ok(modes.some((m) => m.path === infoFile));
    assert.ok(modes.some((m) => m.path.endsWith("control-secret")));
    const badModes = modes.filter((m) => m.mode !== (m.isDir ? 0o700 : 0o600));
    assert.deepEqual(badModes, [], "every file in the state dir is 0600, every dir 0700");
    assert.equal((await Deno.stat(join(home, "logs"))).mode! & 0o777, 0o700);
    assert.equal((await Deno.stat(runner.logPath)).mode! & 0o777, 0o600);
  } finally {
    const code = await runner.stop();
    const output = await runner.output;
    texts["stdout"] = output.stdout;
    texts["stderr"] = output.stderr;
    await relay.close().catch(() => {});
    assert.equal(code, 0, output.stderr);
  }
  try {
    texts["log files"] = await readAll(join(home, "logs"));
    texts["state dir after stop (outbox included)"] = await readAll(runner.stateDir);
    const renewed = renewedTokens(dbPath);
    assert.ok(renewed >= 2, `the runner renewed its token (${renewed} issued)`);
    const reopened = await startDevRelay({ port: 0, token: rootToken, dbPath });
    texts["everything on the relay"] = JSON.stringify(reopened.admin.state());
    await reopened.close();
    assert.ok(
      texts["log files"]!.includes("[redacted]"),
      "the hook-fatal report was logged, redacted",
    );
    assert.ok(texts["everything on the relay"]!.includes("hook_fatal"));
    const secret = (await readControl(agentCwd)).secret;
    const leaks: string[] = [];
    for (const [where, text] of Object.entries(texts)) {
      if (text.includes(secret)) leaks.push(`the control secret in ${where}`);
      if (text.includes(rootToken)) leaks.push(`the relay token in ${where}`);
      const issued = text.match(/drt_[A-Za-z0-9_-]{8,}/);
      if (issued) leaks.push(`a renewed relay token in ${where}`);
    }
    assert.deepEqual(leaks, []);
    // The agent's control.txt is the test's own copy; the state dir held no plain secret file
    // after the stop (control-secret is removed with the runner-info file).
    assert.equal(texts["state dir after stop (outbox included)"]!.includes(secret), false);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

/** The lock file next to the outbox (an empty SQLite file) is 0600 like every other file. */
Deno.test({
  name: "sandbox: the outbox lock file is 0600",
  async fn() {
    const dir = await Deno.makeTempDir();
    const outbox = new Outbox({ path: join(dir, "outbox.sqlite"), agentId: "modes" });
    try {
      assert.equal((await Deno.stat(join(dir, "outbox.sqlite"))).mode! & 0o777, 0o600);
      assert.equal((await Deno.stat(join(dir, "outbox.sqlite.lock"))).mode! & 0o777, 0o600);
    } finally {
      outbox.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/**
 * The provider gets the runner's environment (its API keys, PATH, HOME...) plus the control
 * port and secret, but not the relay's bearer token: an agent that runs `env` in a tool would
 * put it in its transcript, the session mirror and its model provider's logs. (Deno's env grant
 * does not reach child processes, so only the runner can hold it back.)
 */
Deno.test({
  name: "hardening: the relay token is not passed on to the provider's environment",
  async fn() {
    await withHome("arr-env-", async (home) => {
      const agentCwd = join(home, "agent");
      await Deno.mkdir(agentCwd);
      const relay = await startDevRelay({ port: 0, token: `root-${crypto.randomUUID()}` });
      const runner = startRunner(relay, {
        agentId: "envy",
        home,
        cwd: agentCwd,
        providerArgs: ["bash", "-c", "env > env.tmp && mv env.tmp env.txt; cat"],
      });
      try {
        await runner.info();
        const env = await waitFor("the agent's env", async () => {
          try {
            return await Deno.readTextFile(join(agentCwd, "env.txt"));
          } catch {
            return undefined;
          }
        });
        assert.match(env, /^AGENT_RELAY_RUNNER_SECRET=/m, "the provider has what it needs");
        assert.equal(
          env.includes(relay.token),
          false,
          "the relay token is not in its environment",
        );
      } finally {
        await runner.stop();
        await relay.close();
      }
    });
  },
});
