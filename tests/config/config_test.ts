import assert from "node:assert/strict";
import {
  isLoopbackHost,
  parsePort,
  parseRelayUrl,
  resolveRunConfig,
  UsageError,
} from "../../src/config/mod.ts";

const BASE = ["--agent-id", "agent.one", "--relay-url", "http://127.0.0.1:8787/"];
const ENV = { HOME: "/home/op" };

Deno.test("config: defaults lay every dir out under ~/.agent-relay", () => {
  const c = resolveRunConfig(BASE, ENV);
  assert.deepEqual(c.home, "/home/op/.agent-relay");
  assert.deepEqual(c.logDir, "/home/op/.agent-relay/logs");
  assert.deepEqual(c.stateDir, "/home/op/.agent-relay/state/agent.one");
  assert.deepEqual(c.outboxDir, "/home/op/.agent-relay/state/agent.one/outbox");
  assert.deepEqual(c.infoFile, "/home/op/.agent-relay/state/agent.one/runner-info.json");
  assert.deepEqual(c.relayUrl, "http://127.0.0.1:8787");
  assert.deepEqual(c.provider, "claude");
  assert.deepEqual(c.logLevel, "info");
  assert.deepEqual(c.controlPort, 0);
  assert.deepEqual(c.permissionPolicy, "ask-relay");
});

Deno.test("config: AGENT_RELAY_HOME moves the base dir", () => {
  const c = resolveRunConfig(BASE, { ...ENV, AGENT_RELAY_HOME: "/srv/relay" });
  assert.deepEqual(c.logDir, "/srv/relay/logs");
  assert.deepEqual(c.stateDir, "/srv/relay/state/agent.one");
});

Deno.test("config: a flag wins over its environment variable, which wins over the default", () => {
  const env = {
    ...ENV,
    AGENT_RELAY_LOG_LEVEL: "warn",
    AGENT_RELAY_RUNNER_INFO_FILE: "/env/info.json",
    AGENT_RELAY_RUNNER_OUTBOX_DIR: "/env/outbox",
  };
  const fromEnv = resolveRunConfig(BASE, env);
  assert.deepEqual(fromEnv.logLevel, "warn");
  assert.deepEqual(fromEnv.infoFile, "/env/info.json");
  assert.deepEqual(fromEnv.outboxDir, "/env/outbox");
  const fromFlags = resolveRunConfig([
    ...BASE,
    "--log-level",
    "ERROR",
    "--info-file",
    "/flag/i.json",
  ], env);
  assert.deepEqual(fromFlags.logLevel, "error");
  assert.deepEqual(fromFlags.infoFile, "/flag/i.json");
});

Deno.test("config: AGENT_RELAY_SESSION_DEBUG=1 means debug unless AGENT_RELAY_LOG_LEVEL is set", () => {
  assert.deepEqual(
    resolveRunConfig(BASE, { ...ENV, AGENT_RELAY_SESSION_DEBUG: "1" }).logLevel,
    "debug",
  );
  assert.deepEqual(
    resolveRunConfig(BASE, {
      ...ENV,
      AGENT_RELAY_SESSION_DEBUG: "1",
      AGENT_RELAY_LOG_LEVEL: "warn",
    }).logLevel,
    "warn",
  );
  assert.deepEqual(
    resolveRunConfig(BASE, { ...ENV, AGENT_RELAY_SESSION_DEBUG: "0" }).logLevel,
    "info",
  );
});

Deno.test("config: provider args after -- are kept; command needs a program", () => {
  const c = resolveRunConfig([...BASE, "--provider", "command", "--", "./agent", "--fast"], ENV);
  assert.deepEqual(c.providerArgs, ["./agent", "--fast"]);
  assert.throws(() => resolveRunConfig([...BASE, "--provider", "command"], ENV), UsageError);
});

Deno.test("config: the token comes from AGENT_RELAY_TOKEN only", () => {
  assert.deepEqual(resolveRunConfig(BASE, { ...ENV, AGENT_RELAY_TOKEN: "t0k3n" }).token, "t0k3n");
  assert.deepEqual(resolveRunConfig(BASE, ENV).token, undefined);
});

Deno.test("config: relay URLs must be http(s) on loopback", () => {
  assert.deepEqual(parseRelayUrl("https://localhost:1/x/"), "https://localhost:1/x");
  assert.deepEqual(parseRelayUrl("http://[::1]:80"), "http://[::1]");
  // Loopback, but not granted by the sandbox: every call would be refused at run time.
  assert.throws(() => parseRelayUrl("http://127.3.4.5:9"), UsageError);
  for (const bad of ["http://10.0.0.1/", "ws://127.0.0.1/", "http://user:pw@127.0.0.1/", "relay"]) {
    assert.throws(() => parseRelayUrl(bad), UsageError, bad);
  }
  assert.deepEqual(isLoopbackHost("127.0.0.1.example.invalid"), false);
});

Deno.test("config: ports are 0..65535 digits", () => {
  assert.deepEqual(parsePort("0", "p"), 0);
  assert.deepEqual(parsePort("65535", "p"), 65535);
  for (const bad of ["-1", "65536", "1e3", "", "80a"]) {
    assert.throws(() => parsePort(bad, "p"), UsageError);
  }
});

Deno.test("config: agent ids are plain names: '.', '..', slashes, commas and controls exit as usage errors", () => {
  for (const id of [".", "..", "a/b", "a,b", "../state", "a b", "", "x".repeat(129), "a\u0000"]) {
    assert.throws(
      () => resolveRunConfig(["--agent-id", id, ...BASE.slice(2)], ENV),
      (error: unknown) =>
        error instanceof UsageError && /must be 1 to 128 letters, digits/.test(error.message),
      JSON.stringify(id),
    );
  }
  // Ids that differ keep different state dirs: no two ids share one.
  const dirs = ["a_b", "a-b", "a.b", "A_b"].map((id) =>
    resolveRunConfig(["--agent-id", id, ...BASE.slice(2)], ENV).stateDir
  );
  assert.equal(new Set(dirs).size, dirs.length);
});
