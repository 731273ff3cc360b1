/**
 * The operator's flags of `run` (issue 17): the log file and its rotation, the restart policy,
 * the graceful stop budget, and errors that name the variable a bad value came from.
 */
import assert from "node:assert/strict";
import { resolveRunConfig, splitStopBudget, UsageError } from "../../src/config/mod.ts";

const BASE = ["--agent-id", "a1", "--relay-url", "http://127.0.0.1:8787"];
const ENV = { HOME: "/home/op" };

function fails(args: string[], pattern: RegExp, env: Record<string, string> = ENV): void {
  assert.throws(() => resolveRunConfig([...BASE, ...args], env), (error: unknown) => {
    assert.ok(error instanceof UsageError, String(error));
    assert.match(error.message, pattern);
    return true;
  });
}

Deno.test("config: the log file defaults to the log dir; - is stderr; a path moves the log dir", () => {
  const plain = resolveRunConfig(BASE, ENV);
  assert.equal(plain.logFile, "/home/op/.agent-relay/logs/session-mirror-a1.log");
  assert.equal(plain.logMaxBytes, 10 * 1024 * 1024);
  assert.equal(plain.logFiles, 5);
  const stderr = resolveRunConfig([...BASE, "--log-file", "-"], ENV);
  assert.equal(stderr.logFile, "-");
  assert.equal(stderr.logDir, "/home/op/.agent-relay/logs");
  const custom = resolveRunConfig(
    [...BASE, "--log-file", "/var/log/arr/a1.log", "--log-max-bytes", "65536", "--log-files", "2"],
    ENV,
  );
  assert.equal(custom.logFile, "/var/log/arr/a1.log");
  assert.equal(custom.logDir, "/var/log/arr", "the sandbox grants the file's dir");
  assert.equal(custom.logMaxBytes, 65536);
  assert.equal(custom.logFiles, 2);
  const both = resolveRunConfig([...BASE, "--log-dir", "/l", "--log-file", "/l/x.log"], ENV);
  assert.equal(both.logFile, "/l/x.log");
  fails(
    ["--log-dir", "/l", "--log-file", "/m/x.log"],
    /--log-file "\/m\/x.log" is not in --log-dir/,
  );
  fails(["--log-file", "/tmp/"], /--log-file "\/tmp\/" must name a file/);
  fails(["--log-max-bytes", "10"], /--log-max-bytes "10" must be a whole number from 4096/);
  fails(["--log-files", "0"], /--log-files "0"/);
  fails(["--log-files", "two"], /--log-files "two"/);
});

Deno.test("config: the restart policy and the stop budget are flags", () => {
  const plain = resolveRunConfig(BASE, ENV);
  assert.deepEqual(plain.restart, {
    maxRapidExits: 5,
    windowMs: 60_000,
    stepMs: 500,
    maxDelayMs: 10_000,
  });
  assert.equal(plain.stopBudgetMs, 8_000);
  assert.equal(plain.stopTimeoutMs, 5_000, "the runner's default provider stop");
  assert.equal(plain.flushTimeoutMs, 3_000, "the runner's default last flush");
  const set = resolveRunConfig(
    [
      ...BASE,
      "--restart-max",
      "2",
      "--restart-window",
      "1.5",
      "--restart-backoff",
      "20000",
      "--stop-timeout",
      "30",
    ],
    ENV,
  );
  assert.deepEqual(set.restart, {
    maxRapidExits: 2,
    windowMs: 1_500,
    stepMs: 20_000,
    maxDelayMs: 20_000,
  });
  assert.equal(set.stopBudgetMs, 30_000);
  assert.equal(set.stopTimeoutMs + set.flushTimeoutMs, 30_000);
  assert.deepEqual(splitStopBudget(2_000), { stopTimeoutMs: 1_000, flushTimeoutMs: 1_000 });
  fails(["--restart-max", "1001"], /--restart-max "1001" must be a whole number from 0 to 1000/);
  fails(["--restart-window", "0"], /--restart-window "0" must be a number of seconds from 1/);
  fails(["--restart-backoff", "1e3"], /--restart-backoff "1e3"/);
  fails(
    ["--stop-timeout", "0.5"],
    /--stop-timeout "0.5" must be a number of seconds from 1 to 3600/,
  );
  fails(["--stop-timeout", "forever"], /--stop-timeout "forever"/);
});

Deno.test("config: a bad value from the environment names the variable, from a flag the flag", () => {
  fails([], /^AGENT_RELAY_PERMISSION_POLICY "bogus" is not one of: allow, deny, ask-relay$/, {
    ...ENV,
    AGENT_RELAY_PERMISSION_POLICY: "bogus",
  });
  fails(["--permission-policy", "maybe"], /^--permission-policy "maybe" is not one of/, {
    ...ENV,
    AGENT_RELAY_PERMISSION_POLICY: "allow",
  });
  fails([], /^AGENT_RELAY_LOG_LEVEL "loud"/, { ...ENV, AGENT_RELAY_LOG_LEVEL: "loud" });
  const policy = resolveRunConfig(BASE, { ...ENV, AGENT_RELAY_PERMISSION_POLICY: "deny" });
  assert.equal(policy.permissionPolicy, "deny");
  const emptyIsUnset = resolveRunConfig(BASE, { ...ENV, AGENT_RELAY_PERMISSION_POLICY: "" });
  assert.equal(emptyIsUnset.permissionPolicy, "ask-relay");
});
