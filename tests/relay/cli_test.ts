import assert from "node:assert/strict";
import { join } from "node:path";
import { devRelayCommand } from "../../src/cli/dev_relay.ts";
import { startDevRelay } from "../../src/dev_relay/mod.ts";
import { RelayBus } from "../../src/relay/bus_client.ts";
import { RelayHttpClient } from "../../src/relay/http_client.ts";
import { sendCommand } from "../../src/cli/send.ts";
import type { Message } from "../../src/types.ts";
import { connected, RecordingLogger, waitFor } from "./helpers.ts";

interface Run {
  code: number;
  out: string[];
  err: string[];
}

async function send(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await sendCommand(args, env, {
    stdout: (l) => void out.push(l),
    stderr: (l) => void err.push(l),
    pollIntervalMs: 10,
  });
  return { code, out, err };
}

Deno.test("send rejects bad usage with exit 2 and one line", async () => {
  const cases: Array<[string[], RegExp]> = [
    [["--to", "a1", "hi"], /missing required flag --relay/],
    [["--relay", "http://127.0.0.1:1", "hi"], /missing required flag --to/],
    [["--relay", "http://127.0.0.1:1", "--to", "a1"], /missing the message TEXT/],
    [["--relay", "http://127.0.0.1:1", "--to", "a1", "--bogus", "hi"], /unknown flag --bogus/],
    [["--relay", "http://example.com", "--to", "a1", "hi"], /not on a loopback host/],
    [["--relay", "http://127.0.0.1:1", "--to", "a1", "--wait-reply", "soon", "hi"], /--wait-reply/],
    [["--relay", "http://127.0.0.1:1", "--to", "a1", "--wait-reply", "0", "hi"], /--wait-reply/],
    [["--relay", "http://127.0.0.1:1", "--to", " ", "hi"], /--to/],
    [["--relay", "http://127.0.0.1:1", "--to", "a1", "--token", "a b", "hi"], /token/],
  ];
  for (const [args, pattern] of cases) {
    const run = await send(args);
    assert.equal(run.code, 2, args.join(" "));
    assert.equal(run.err.length, 1);
    assert.match(run.err[0] ?? "", pattern);
    assert.match(run.err[0] ?? "", /^send: /);
    assert.deepEqual(run.out, []);
  }
});

Deno.test("send posts a chat message and prints it as JSON", async () => {
  const relay = await startDevRelay({ token: "t0k" });
  try {
    const run = await send([
      "--relay",
      relay.url,
      "--to",
      "a1",
      "--token",
      "t0k",
      "hello",
      "there",
    ]);
    assert.equal(run.code, 0, run.err.join("\n"));
    const printed = JSON.parse(run.out[0] ?? "") as Message;
    assert.equal(printed.body, "hello there");
    assert.equal(printed.from, "user");
    assert.equal(printed.kind, "chat");
    assert.deepEqual(relay.admin.state().messages, [printed]);
    // The relay URL and token may come from the environment.
    const fromEnv = await send(["--to", "a2", "--from", "ops", "env"], {
      AGENT_RELAY_URL: relay.url,
      AGENT_RELAY_TOKEN: "t0k",
    });
    assert.equal(fromEnv.code, 0, fromEnv.err.join("\n"));
    assert.equal((JSON.parse(fromEnv.out[0] ?? "") as Message).from, "ops");
    // A wrong token fails with exit 1 and no token in the message.
    const denied = await send(["--relay", relay.url, "--to", "a1", "--token", "nope-nope", "x"]);
    assert.equal(denied.code, 1);
    assert.match(denied.err[0] ?? "", /401/);
    assert.ok(!denied.err[0]?.includes("nope-nope"));
  } finally {
    await relay.close();
  }
});

Deno.test("send --wait-reply prints the reply to its message and marks it read", async () => {
  const relay = await startDevRelay();
  const http = new RelayHttpClient({ baseUrl: relay.url, token: "dev" });
  // An agent on the bus that answers every chat message with replyTo set.
  const agent = new RelayBus({
    baseUrl: relay.url,
    agentId: "a1",
    token: () => "dev",
    logger: new RecordingLogger(),
    pingIntervalMs: 0,
    onMessage: async (m) => {
      await http.sendMessage({ from: "a1", to: "user", kind: "chat", body: "unrelated" });
      await http.sendMessage({
        from: "a1",
        to: m.from,
        kind: "chat",
        body: `re: ${m.body}`,
        replyTo: m.id,
      });
    },
  });
  agent.start();
  try {
    await connected(agent);
    await waitFor(() => relay.admin.connections().length === 1, "the agent's connection");
    const run = await send(["--relay", relay.url, "--to", "a1", "--wait-reply", "20", "ping"]);
    assert.equal(run.code, 0, run.err.join("\n"));
    assert.equal(run.out.length, 2);
    const sent = JSON.parse(run.out[0] ?? "") as Message;
    const reply = JSON.parse(run.out[1] ?? "") as Message;
    assert.equal(reply.replyTo, sent.id);
    assert.equal(reply.body, "re: ping");
    assert.ok(
      relay.admin.state().reads.some((r) => r.messageId === reply.id && r.agentId === "user"),
    );
    assert.deepEqual(await http.replyObligations("a1"), []);
  } finally {
    await agent.close();
    await relay.close();
  }
});

Deno.test("send --wait-reply gives up with exit 1 when no reply comes; a dead relay is exit 1", async () => {
  const relay = await startDevRelay();
  try {
    const run = await send(["--relay", relay.url, "--to", "a1", "--wait-reply", "0.05", "anyone?"]);
    assert.equal(run.code, 1);
    assert.equal(run.out.length, 1);
    assert.match(run.err.at(-1) ?? "", /no reply to message #1 from a1 within 0.05s/);
    await relay.admin.setFaults({ down: true });
    const down = await send(["--relay", relay.url, "--to", "a1", "hi"]);
    assert.equal(down.code, 1);
    assert.match(down.err[0] ?? "", /could not reach the relay/);
  } finally {
    await relay.close();
  }
});

Deno.test("dev-relay validates its flags with exit 2", async () => {
  const cases: Array<[string[], RegExp]> = [
    [["--port", "http"], /--port "http" is not a port number/],
    [["--port", "70000"], /--port/],
    [["--token", "two words"], /--token/],
    [["--permission", "maybe"], /--permission "maybe"/],
    [["--nope"], /unknown flag --nope/],
    [["extra"], /unexpected argument "extra"/],
    [["--db", ""], /--db/],
  ];
  for (const [args, pattern] of cases) {
    const err: string[] = [];
    const code = await devRelayCommand(args, {}, { stderr: (l) => void err.push(l) });
    assert.equal(code, 2, args.join(" "));
    assert.equal(err.length, 1);
    assert.match(err[0] ?? "", pattern);
  }
  const out: string[] = [];
  assert.equal(await devRelayCommand(["--help"], {}, { stdout: (l) => void out.push(l) }), 0);
  assert.match(out[0] ?? "", /Usage: agent-relay-runner dev-relay/);
});

Deno.test("dev-relay runs until stopped, prints its URL and traces requests", async () => {
  const controller = new AbortController();
  const out: string[] = [];
  const err: string[] = [];
  const running = devRelayCommand(
    ["--port", "0", "--token", "cli-token", "--permission", "allow"],
    {},
    {
      signal: controller.signal,
      stdout: (l) => void out.push(l),
      stderr: (l) => void err.push(l),
    },
  );
  try {
    const url = await waitFor(() => out[0], "the URL on stdout");
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const client = new RelayHttpClient({ baseUrl: url, token: "cli-token" });
    await client.sendMessage({ from: "user", to: "a1", kind: "chat", body: "via cli" });
    const decision = await client.askPermission("a1", {
      requestId: "r",
      provider: "claude",
      tool: "Bash",
      input: {},
    });
    assert.equal(decision.decision, "allow");
    assert.ok(err.some((l) => /POST \/api\/messages 201 .*"via cli"/.test(l)), err.join("\n"));
    assert.ok(err.every((l) => !l.includes("cli-token")));
  } finally {
    controller.abort();
  }
  assert.equal(await running, 0);
  assert.match(err.at(-1) ?? "", /stopping/);
});

Deno.test("dev-relay as a process: a port in use is exit 1, SIGTERM stops it with exit 0", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dev-relay-cli-" });
  const fixture = new URL("./fixtures/dev_relay_main.ts", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", fixture, "--port", "0", "--db", join(dir, "r.sqlite")],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const stderr = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  const errText: string[] = [];
  const pump = (async () => {
    while (true) {
      const { value, done } = await stderr.read();
      if (done) return;
      errText.push(value);
    }
  })();
  const stdout = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let outText = "";
  try {
    const url = await waitFor(
      async () => {
        if (!outText.includes("\n")) {
          const { value, done } = await stdout.read();
          if (done) throw new Error(`dev-relay exited early: ${errText.join("")}`);
          outText += value;
        }
        return outText.includes("\n") ? outText.split("\n")[0] : undefined;
      },
      "the URL",
      20_000,
    );
    const sent = await send(["--relay", url ?? "", "--to", "a1", "over a real process"]);
    assert.equal(sent.code, 0, sent.err.join("\n"));

    // A second relay on the same port cannot start.
    const port = new URL(url ?? "").port;
    const err: string[] = [];
    const code = await devRelayCommand(["--port", port], {}, { stderr: (l) => void err.push(l) });
    assert.equal(code, 1);
    assert.match(err[0] ?? "", /cannot start on 127\.0\.0\.1/);
  } finally {
    child.kill("SIGTERM");
  }
  const status = await child.status;
  await stdout.cancel();
  await pump;
  await Deno.remove(dir, { recursive: true });
  assert.equal(status.code, 0, errText.join(""));
  const log = errText.join("");
  assert.match(log, /dev-relay listening on http:\/\/127\.0\.0\.1:\d+ \(db: .*r\.sqlite/);
  assert.match(log, /POST \/api\/messages 201 \d+ms #1 user -> a1 chat "over a real process"/);
  assert.match(log, /stopping \(SIGTERM\)/);
});
