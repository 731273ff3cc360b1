import assert from "node:assert/strict";
import { join } from "node:path";
import { outputOf, readJson, runMain, spawnMain, tempDir, waitFor } from "./support.ts";

// `deno task start -- CMD` and `deno task start CMD` take the same path (issue 17).
for (const dashes of [["--"], []]) {
  const form = dashes.length ? "deno task start -- CMD" : "deno task start CMD";

  Deno.test(`run path: ${form}: run writes its log and state, prints one start line, stops on SIGTERM`, async () => {
    await using home = await tempDir();
    const child = spawnMain(
      [
        ...dashes,
        "run",
        "--agent-id",
        "t",
        "--relay-url",
        "http://127.0.0.1:1",
        "--provider",
        "command",
        "--",
        "/bin/cat",
      ],
      { task: true, env: { AGENT_RELAY_HOME: home.path } },
    );
    const output = outputOf(child);
    const info = join(home.path, "state", "t", "runner-info.json");
    await waitFor("the runner-info file", () => readJson(info));
    // The start line follows the provider's start, which comes after the runner-info file.
    const log = join(home.path, "logs", "session-mirror-t.log");
    await waitFor("the provider's start", async () => {
      return (await Deno.readTextFile(log).catch(() => "")).includes("command started (pid");
    });
    child.kill("SIGTERM");
    const out = await output;
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stderr, /^agent-relay-runner: \S+ running agent t: control port \d+, log /);
    assert.match(
      await Deno.readTextFile(join(home.path, "logs", "session-mirror-t.log")),
      /starting agent t/,
    );
  });

  Deno.test(`run path: ${form}: outbox stats reads the agent's outbox`, async () => {
    await using home = await tempDir();
    // A runner that stops at once leaves an outbox behind.
    const child = spawnMain(
      [
        "run",
        "--agent-id",
        "o",
        "--relay-url",
        "http://127.0.0.1:1",
        "--provider",
        "command",
        "--",
        "/bin/cat",
      ],
      { env: { AGENT_RELAY_HOME: home.path } },
    );
    const output = outputOf(child);
    await waitFor(
      "the runner-info file",
      () => readJson(join(home.path, "state", "o", "runner-info.json")),
    );
    child.kill("SIGTERM");
    assert.equal((await output).code, 0);
    const out = await runMain([...dashes, "outbox", "stats", "--agent-id", "o"], {
      task: true,
      env: { AGENT_RELAY_HOME: home.path },
    });
    assert.equal(out.code, 0, out.stderr);
    assert.doesNotMatch(out.stdout + out.stderr, /no outbox|Requires/);
  });

  Deno.test(`run path: ${form}: dev-relay --db opens its database`, async () => {
    await using home = await tempDir();
    const db = join(home.path, "relay.db");
    const child = spawnMain([...dashes, "dev-relay", "--db", db, "--port", "0"], { task: true });
    const stderr = new Response(child.stderr).text();
    // It prints its URL once it listens, its signal handlers on: stop it only then.
    let stdout = "";
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    while (!/^http:\/\/127\.0\.0\.1:\d+\n/.test(stdout)) {
      const { value, done } = await reader.read();
      if (done) break;
      stdout += value;
    }
    assert.match(stdout, /^http:\/\/127\.0\.0\.1:\d+\n/);
    assert.ok((await Deno.stat(db)).isFile);
    child.kill("SIGINT");
    while (!(await reader.read()).done) {
      // Drained to the end: it may still write, and a closed pipe would fail it.
    }
    const status = await child.status;
    // The relay stops itself cleanly; `deno task`, which got the SIGINT too, may report it as
    // its own (130) or pass on the relay's 0, depending on which of the two acts first.
    assert.ok(status.code === 0 || status.code === 130, `exit ${status.code}: ${await stderr}`);
    assert.match(await stderr, /dev-relay stopping \(SIGINT\)/);
    assert.doesNotMatch(await stderr, /Requires/);
  });
}

Deno.test("run path: a crash loop exits 1 with one line on stderr saying why", async () => {
  await using home = await tempDir();
  const out = await runMain(
    [
      "run",
      "--agent-id",
      "c",
      "--relay-url",
      "http://127.0.0.1:1",
      "--provider",
      "command",
      "--restart-backoff",
      "1",
      "--",
      "/bin/false",
    ],
    { env: { AGENT_RELAY_HOME: home.path } },
  );
  assert.equal(out.code, 1, out.stderr);
  const lines = out.stderr.trim().split("\n");
  assert.equal(lines.length, 2, out.stderr); // The start line, then why it stopped.
  assert.match(lines[1]!, /^agent-relay-runner: exit 1: giving up: the provider exited \d+ times/);
});

Deno.test("run path: the runner's environment never holds the token given in --token-file", async () => {
  await using home = await tempDir();
  const tokenFile = join(home.path, "token");
  await Deno.writeTextFile(tokenFile, "tok-SECRET-123\n", { mode: 0o600 });
  const child = spawnMain(
    [
      "run",
      "--agent-id",
      "k",
      "--relay-url",
      "http://127.0.0.1:1",
      "--token-file",
      tokenFile,
      "--provider",
      "command",
      "--",
      "/bin/cat",
    ],
    { env: { AGENT_RELAY_HOME: home.path } },
  );
  const output = outputOf(child);
  const info = await waitFor(
    "the runner-info file",
    () => readJson(join(home.path, "state", "k", "runner-info.json")),
  );
  const environ = await Deno.readTextFile(`/proc/${child.pid}/environ`);
  assert.ok(environ.includes("AGENT_RELAY_HOME="), "read the runner's own environment");
  assert.ok(!environ.includes("tok-SECRET-123"));
  assert.equal(info["pid"], child.pid);
  child.kill("SIGTERM");
  assert.equal((await output).code, 0);
});
