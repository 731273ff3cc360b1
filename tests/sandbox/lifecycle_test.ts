import assert from "node:assert/strict";
import { join } from "node:path";
import { alive, outputOf, readJson, spawnMain, tempDir, waitFor } from "./support.ts";

/**
 * A provider that starts a tool in a session of its own (as Claude's Bash tool does), records
 * both pids in `<dir>/pids` (one "provider tool" line per start), then waits. With `ignoreTerm`
 * it ignores SIGTERM, so only SIGKILL ends it.
 */
async function writeProvider(dir: string, options: { ignoreTerm?: boolean } = {}): Promise<string> {
  const script = join(dir, "provider.sh");
  await Deno.writeTextFile(
    script,
    [
      "#!/bin/bash",
      options.ignoreTerm ? "trap '' TERM" : "",
      "setsid sleep 100000 </dev/null >/dev/null 2>&1 &",
      `echo "$$ $!" >> '${join(dir, "pids")}'`,
      // Not reading stdin: it outlives the pipe from a killed runner, as a busy agent would.
      "exec sleep 100000",
      "",
    ].join("\n"),
    { mode: 0o755 },
  );
  return script;
}

async function startsOf(dir: string): Promise<Array<[number, number]>> {
  try {
    const text = await Deno.readTextFile(join(dir, "pids"));
    return text.trim().split("\n").map((l) => l.split(" ").map(Number) as [number, number]);
  } catch {
    return [];
  }
}

/** The pids of the provider's first start, once it has started. */
function firstStart(dir: string): Promise<[number, number]> {
  return waitFor("the provider to start", async () => (await startsOf(dir))[0]);
}

function runArgs(agent: string, script: string): string[] {
  return [
    "run",
    "--agent-id",
    agent,
    "--relay-url",
    "http://127.0.0.1:1",
    "--provider",
    "command",
    "--",
    script,
  ];
}

Deno.test("sandbox lifetime: after kill -9 of the runner, the next start ends its provider and its setsid tool", async () => {
  await using home = await tempDir();
  const script = await writeProvider(home.path);
  const env = { AGENT_RELAY_HOME: home.path };
  const info = join(home.path, "state", "sweep", "runner-info.json");
  const first = spawnMain(runArgs("sweep", script), { env });
  const firstOut = outputOf(first);
  const [provider, tool] = await firstStart(home.path);
  await waitFor("the runner-info file", () => readJson(info));
  first.kill("SIGKILL");
  await firstOut;
  // The attack: both outlive the runner.
  assert.ok(alive(provider), "the provider outlives kill -9 of the runner");
  assert.ok(alive(tool), "the tool outlives kill -9 of the runner");

  const second = spawnMain(runArgs("sweep", script), { env });
  const secondOut = outputOf(second);
  await waitFor("the old provider and tool to end", () => !alive(provider) && !alive(tool));
  await waitFor("the second provider", async () => (await startsOf(home.path)).length === 2);
  await waitFor("the second runner-info file", () => readJson(info)?.["pid"] === second.pid);
  second.kill("SIGTERM");
  const out = await secondOut;
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stderr, /ended 2 process\(es\) left by the previous run \(pid \d+\)/);
  const [provider2, tool2] = (await startsOf(home.path))[1]!;
  assert.ok(
    !alive(provider2!) && !alive(tool2!),
    "a graceful stop ends the tool in its own session",
  );
});

Deno.test("sandbox lifetime: SIGHUP stops gracefully: exit 0, info file and pidfile removed, tools ended", async () => {
  await using home = await tempDir();
  const script = await writeProvider(home.path);
  const state = join(home.path, "state", "hup");
  const child = spawnMain(runArgs("hup", script), { env: { AGENT_RELAY_HOME: home.path } });
  const output = outputOf(child);
  await waitFor("the runner-info file", () => readJson(join(state, "runner-info.json")));
  const [provider, tool] = await firstStart(home.path);
  assert.ok(readJson(join(state, "runner.pid")), "the launcher's pidfile is there while it runs");
  child.kill("SIGHUP");
  const out = await output;
  assert.equal(out.code, 0, out.stderr);
  // One line at start, nothing else: version, agent id, control port, log file, info file.
  assert.match(
    out.stderr.trim(),
    /^agent-relay-runner: \S+ running agent hup: control port \d+, log \S+session-mirror-hup\.log, info \S+runner-info\.json$/,
  );
  assert.equal(readJson(join(state, "runner-info.json")), undefined);
  assert.equal(readJson(join(state, "runner.pid")), undefined);
  assert.ok(!alive(provider) && !alive(tool));
});

Deno.test("sandbox lifetime: a second signal during the stop exits at once (1, one line), the provider killed", async () => {
  await using home = await tempDir();
  const script = await writeProvider(home.path, { ignoreTerm: true });
  const state = join(home.path, "state", "twice");
  const log = join(home.path, "logs", "session-mirror-twice.log");
  const child = spawnMain(runArgs("twice", script), { env: { AGENT_RELAY_HOME: home.path } });
  const output = outputOf(child);
  await waitFor("the runner-info file", () => readJson(join(state, "runner-info.json")));
  const [provider, tool] = await firstStart(home.path);
  child.kill("SIGTERM");
  await waitFor(
    "the stop to begin",
    async () => /stopping gracefully/.test(await Deno.readTextFile(log)),
  );
  // Counted from when the stop was seen to begin: the launcher took the first signal by then
  // (on a loaded machine, a while after it was sent).
  const firstAt = Date.now();
  // A signal within half a second of the first counts as the same one: wait past that.
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, 600 - (Date.now() - firstAt))));
  child.kill("SIGTERM");
  const out = await output;
  assert.equal(out.code, 1, out.stderr);
  assert.match(
    out.stderr.trim().split("\n").at(-1)!,
    /^agent-relay-runner: SIGTERM received again during the stop: exited at once$/,
  );
  await waitFor("the provider and tool to end", () => !alive(provider) && !alive(tool));
});
