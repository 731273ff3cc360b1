import assert from "node:assert/strict";
import { join } from "node:path";
import { type DevRelay, startDevRelay } from "../../src/dev_relay/mod.ts";
import { RelayBus, type RelayBusOptions } from "../../src/relay/bus_client.ts";
import { busUrl, classifyBusError } from "../../src/relay/bus_protocol.ts";
import { RelayHttpClient } from "../../src/relay/http_client.ts";
import type { BusCommand, Message } from "../../src/types.ts";
import { FakeClock } from "../support/fake_clock.ts";
import { connected, RecordingLogger, waitFor } from "./helpers.ts";

const FAST = {
  initialBackoffMs: 10,
  maxBackoffMs: 80,
  healthyAfterMs: 60_000,
  pingIntervalMs: 0,
};

type Bus = RelayBus & AsyncDisposable;

function openBus(
  relay: { url: string },
  options: Partial<RelayBusOptions> & { agentId?: string } = {},
): Bus {
  const bus = new RelayBus({
    baseUrl: relay.url,
    agentId: options.agentId ?? "a1",
    token: () => "dev",
    logger: new RecordingLogger(),
    ...FAST,
    ...options,
  });
  bus.start();
  return Object.assign(bus, { [Symbol.asyncDispose]: () => bus.close() });
}

async function relayFor(options: Parameters<typeof startDevRelay>[0] = {}) {
  const relay = await startDevRelay(options);
  return Object.assign(relay, { [Symbol.asyncDispose]: () => relay.close() });
}

function send(relay: DevRelay, to: string, body: string): Promise<Message> {
  return new RelayHttpClient({ baseUrl: relay.url, token: "dev" })
    .sendMessage({ from: "user", to, kind: "chat", body })
    .then((sent) => sent.message);
}

Deno.test("the bus carries the bearer token in the upgrade header, never in the URL", async () => {
  await using relay = await relayFor({ token: "s3cret-token" });
  let token: string | undefined;
  let authErrors = 0;
  await using bus = openBus(relay, {
    token: () => token,
    onAuthError: () => {
      authErrors++;
      token = "s3cret-token";
    },
  });
  assert.ok(!bus.url.includes("s3cret"));
  assert.equal(new URL(bus.url).search, "?agentId=a1&role=provider");
  // Without a token the upgrade is refused with 401: the bus asks for a renewal, then connects.
  await connected(bus);
  assert.equal(authErrors, 1);
  assert.deepEqual(relay.admin.connections().map((c) => [c.agentId, c.role]), [["a1", "provider"]]);
});

Deno.test("message.new fans out to the recipient's connections and to observers", async () => {
  await using relay = await relayFor();
  const got: Record<string, Message[]> = { one: [], two: [], other: [], observer: [] };
  const buses = [
    openBus(relay, { onMessage: (m) => void got.one!.push(m) }),
    openBus(relay, { onMessage: (m) => void got.two!.push(m) }),
    openBus(relay, { agentId: "a2", onMessage: (m) => void got.other!.push(m) }),
    openBus(relay, {
      agentId: "dash",
      role: "observer",
      onMessage: (m) => void got.observer!.push(m),
    }),
  ];
  try {
    await Promise.all(buses.map((b) => connected(b)));
    await waitFor(() => relay.admin.connections().length === 4, "four connections");
    const m1 = await send(relay, "a1", "for a1");
    const m2 = await send(relay, "a2", "for a2");
    await waitFor(() => got.other!.length === 1 && got.observer!.length === 2, "fan-out");
    await waitFor(() => got.one!.length === 1 && got.two!.length === 1, "both a1 connections");
    assert.deepEqual(got.one, [m1]);
    assert.deepEqual(got.two, [m1]);
    assert.deepEqual(got.other, [m2]);
    assert.deepEqual(got.observer!.map((m) => m.id), [m1.id, m2.id]);
  } finally {
    await Promise.all(buses.map((b) => b.close()));
  }
});

Deno.test("commands reach their handler and are answered with command.result", async () => {
  await using relay = await relayFor();
  const seen: Array<[BusCommand, string]> = [];
  await using bus = openBus(relay, {
    onCommand: (command, id) => {
      seen.push([command, id]);
      if (command.type === "restart") throw new Error("cannot restart now");
      return { done: command.type };
    },
  });
  await connected(bus);
  await waitFor(() => relay.admin.connections().length === 1, "the connection");
  assert.deepEqual(await relay.admin.sendCommand("a1", { type: "interrupt" }), {
    ok: true,
    result: { done: "interrupt" },
  });
  assert.deepEqual(await relay.admin.sendCommand("a1", { type: "set-log-level", level: "debug" }), {
    ok: true,
    result: { done: "set-log-level" },
  });
  assert.deepEqual(await relay.admin.sendCommand("a1", { type: "restart" }), {
    ok: false,
    error: "cannot restart now",
  });
  assert.deepEqual(seen.map(([c, id]) => [c.type, id]), [
    ["interrupt", "c1"],
    ["set-log-level", "c2"],
    ["restart", "c3"],
  ]);
  assert.equal(seen[1]?.[0]["level"], "debug");
  assert.equal(relay.admin.commands().length, 3);
  await assert.rejects(
    relay.admin.sendCommand("nobody", { type: "exit" }),
    /no provider connection/,
  );

  await using bare = openBus(relay, { agentId: "b1" });
  await connected(bare);
  await waitFor(() => relay.admin.connections().length === 2, "the second connection");
  const unanswered = await relay.admin.sendCommand("b1", { type: "exit" });
  assert.equal(unanswered.ok, false);
  assert.match(unanswered.error ?? "", /no commands/);
});

Deno.test("the status frame is re-sent after every reconnect (last wins) and onReconnect fires", async () => {
  await using relay = await relayFor();
  let reconnects = 0;
  await using bus = openBus(relay, { onReconnect: () => reconnects++ });
  bus.setStatus("busy", 1000);
  await connected(bus);
  const statuses = () => relay.admin.state().statuses.map((s) => [s.status, s.at]);
  await waitFor(() => statuses().length === 1, "the first status frame");
  assert.equal(reconnects, 0);

  relay.admin.dropWebSockets();
  await waitFor(() => reconnects === 1, "a reconnect");
  await waitFor(() => statuses().length === 2, "the re-sent status");
  bus.setStatus("idle", 2000);
  await waitFor(() => statuses().length === 3, "the new status");
  relay.admin.dropWebSockets();
  await waitFor(() => reconnects === 2, "a second reconnect");
  await waitFor(() => statuses().length === 4, "the re-sent status");
  assert.deepEqual(statuses(), [["busy", 1000], ["busy", 1000], ["idle", 2000], ["idle", 2000]]);
});

Deno.test("the bus reconnects after the relay restarts on the same port, with its state", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bus-restart-" });
  try {
    const dbPath = join(dir, "relay.sqlite");
    const first = await startDevRelay({ dbPath });
    const port = first.port;
    let reconnects = 0;
    const got: Message[] = [];
    await using bus = openBus(first, {
      onReconnect: () => reconnects++,
      onMessage: (m) => void got.push(m),
    });
    bus.setStatus("idle");
    await connected(bus);
    const before = await send(first, "a1", "before");
    await waitFor(() => got.length === 1, "the first message");
    await first.close();
    await waitFor(() => bus.state === "connecting" && bus.attempts >= 2, "failed attempts");

    await using second = await relayFor({ port, dbPath });
    await waitFor(() => reconnects === 1, "the reconnect");
    await waitFor(() => second.admin.state().statuses.length === 2, "the status, re-sent");
    assert.deepEqual(second.admin.state().messages.map((m) => m.id), [before.id]);
    const after = await send(second, "a1", "after");
    await waitFor(() => got.length === 2, "the second message");
    assert.deepEqual(got.map((m) => m.body), ["before", "after"]);
    assert.ok(after.id > before.id);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the backoff doubles up to its cap, with jitter, and resets after a healthy connection", async () => {
  await using relay = await relayFor({ faults: { dropWebSockets: true } });
  const logger = new RecordingLogger();
  await using bus = openBus(relay, {
    logger,
    initialBackoffMs: 4,
    maxBackoffMs: 32,
    random: () => 1,
    healthyAfterMs: 20,
  });
  await waitFor(() => bus.attempts >= 6, "six failed attempts");
  const delays = logger.lines
    .map((l) => /next try in (\d+)ms/.exec(l.message)?.[1])
    .filter((d) => d !== undefined)
    .map(Number);
  assert.deepEqual(delays.slice(0, 6), [4, 8, 16, 32, 32, 32]);
  // One warning for the repeated failure, not one per attempt.
  assert.equal(logger.at("warn").filter((m) => /503/.test(m)).length, 1);

  await relay.admin.clearFaults();
  await connected(bus);
  await waitFor(() => bus.attempts === 0, "the backoff reset");

  // With random 0 the delay is half the base: equal jitter.
  const low = new RecordingLogger();
  await relay.admin.setFaults({ dropWebSockets: true });
  await using jittered = openBus(relay, {
    agentId: "a2",
    logger: low,
    initialBackoffMs: 8,
    random: () => 0,
  });
  await waitFor(() => jittered.attempts >= 2, "two failed attempts");
  const lowDelays = low.lines.map((l) => /next try in (\d+)ms/.exec(l.message)?.[1]).filter(
    (d) => d !== undefined,
  ).map(Number);
  assert.deepEqual(lowDelays.slice(0, 2), [4, 8]);
});

Deno.test("the reconnect backoff waits on the injected clock", async () => {
  await using relay = await relayFor({ faults: { dropWebSockets: true } });
  const clock = new FakeClock();
  const logger = new RecordingLogger();
  await using bus = openBus(relay, {
    clock,
    logger,
    initialBackoffMs: 1000,
    maxBackoffMs: 4000,
    random: () => 0,
  });
  // The refused attempt arms the next one on the fake clock; nothing moves until it ticks.
  await waitFor(() => bus.attempts === 1 && clock.pending === 1, "the first retry armed");
  clock.tick(499);
  assert.equal(bus.attempts, 1);
  clock.tick(1);
  await waitFor(() => bus.attempts === 2 && clock.pending === 1, "the second retry armed");
  await relay.admin.clearFaults();
  clock.tick(1000);
  await connected(bus);
  const delays = logger.lines
    .map((l) => /next try in (\d+)ms/.exec(l.message)?.[1])
    .filter((d) => d !== undefined)
    .map(Number);
  assert.deepEqual(delays, [500, 1000]);
});

Deno.test("an auth error frame renews the token and reconnects with the new one", async () => {
  await using relay = await relayFor();
  const http = new RelayHttpClient({ baseUrl: relay.url, token: "dev" });
  let reconnects = 0;
  const got: Message[] = [];
  await using bus = openBus(relay, {
    token: () => http.token,
    onAuthError: () => http.renewToken(),
    onReconnect: () => reconnects++,
    onMessage: (m) => void got.push(m),
  });
  await connected(bus);
  await waitFor(() => relay.admin.connections().length === 1, "the connection");
  relay.admin.expireTokens(); // the relay sends token_expired and closes the socket
  await waitFor(() => reconnects === 1, "the reconnect");
  assert.ok(http.token && http.token !== "dev");
  // The new connection is authorized by the renewed token and delivers messages.
  await http.sendMessage({ from: "user", to: "a1", kind: "chat", body: "after renewal" });
  await waitFor(() => got.length === 1, "a message on the renewed connection");
  assert.equal(got[0]?.body, "after renewal");
});

Deno.test("a fatal error frame closes the bus and calls onFatal; other codes are only logged", async () => {
  await using relay = await relayFor();
  const logger = new RecordingLogger();
  const fatal: Array<[string, string]> = [];
  await using bus = openBus(relay, {
    logger,
    onFatal: (code, message) => fatal.push([code, message]),
  });
  await connected(bus);
  await waitFor(() => relay.admin.connections().length === 1, "the connection");
  relay.admin.sendError("a1", "slow_down", "just so you know");
  await waitFor(() => logger.at("warn").some((m) => /slow_down/.test(m)), "the logged error");
  assert.equal(bus.state, "open");

  relay.admin.sendError("a1", "agent_replaced", "another runner took over");
  await waitFor(() => fatal.length === 1, "onFatal");
  assert.deepEqual(fatal, [["agent_replaced", "another runner took over"]]);
  assert.equal(bus.state, "closed");
  await waitFor(() => relay.admin.connections().length === 0, "the relay to see the close");
  await assert.rejects(bus.whenConnected(), /closed/);
});

Deno.test("a connection that stops answering pings is dropped and replaced", async () => {
  await using relay = await relayFor();
  const logger = new RecordingLogger();
  let reconnects = 0;
  await using bus = openBus(relay, {
    logger,
    pingIntervalMs: 20,
    pingTimeoutMs: 40,
    onReconnect: () => reconnects++,
  });
  await connected(bus);
  await relay.admin.setFaults({ busSilent: true });
  await waitFor(() => reconnects >= 1, "a reconnect after the dead connection");
  assert.ok(logger.at("warn").some((m) => /connection dead/.test(m)));
  await relay.admin.clearFaults();
});

Deno.test("the dropWebSockets switch refuses upgrades until cleared", async () => {
  await using relay = await relayFor();
  let reconnects = 0;
  await using bus = openBus(relay, { onReconnect: () => reconnects++ });
  await connected(bus);
  await relay.admin.setFaults({ dropWebSockets: true });
  await waitFor(() => bus.attempts >= 2, "refused attempts");
  assert.equal(relay.admin.connections().length, 0);
  assert.equal(reconnects, 0);
  await relay.admin.clearFaults();
  await waitFor(() => reconnects === 1, "the reconnect");
});

Deno.test("frames that are not JSON, not objects or malformed are ignored", async () => {
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    (req) => {
      const { socket, response } = Deno.upgradeWebSocket(req);
      socket.onopen = () => {
        socket.send("not json");
        socket.send("[1,2]");
        socket.send(JSON.stringify({ type: "message.new", message: { id: "x" } }));
        socket.send(JSON.stringify({ type: "command" }));
        socket.send(JSON.stringify({ type: "mystery" }));
        socket.send(JSON.stringify({
          type: "message.new",
          message: { id: 1, from: "u", to: "a1", kind: "chat", body: "ok", createdAt: 0 },
        }));
      };
      return response;
    },
  );
  try {
    const got: Message[] = [];
    const logger = new RecordingLogger();
    await using _bus = openBus({ url: `http://127.0.0.1:${server.addr.port}` }, {
      logger,
      onMessage: (m) => void got.push(m),
    });
    await waitFor(() => got.length === 1, "the valid message");
    assert.equal(got[0]?.createdAt, "1970-01-01T00:00:00.000Z");
    assert.ok(logger.at("warn").some((m) => /not JSON/.test(m)));
    assert.ok(logger.at("warn").some((m) => /malformed/.test(m)));
    assert.ok(logger.at("warn").some((m) => /no id/.test(m)));
  } finally {
    ac.abort();
    await server.finished;
  }
});

Deno.test("close() and an aborted signal stop the bus, even while it is reconnecting", async () => {
  await using relay = await relayFor({ faults: { dropWebSockets: true } });
  const bus = openBus(relay);
  await waitFor(() => bus.attempts >= 1, "a failed attempt");
  const waiting = assert.rejects(bus.whenConnected(), /closed/);
  await bus.close();
  await waiting;
  assert.equal(bus.state, "closed");
  await bus.close(); // idempotent

  const controller = new AbortController();
  const states: string[] = [];
  const aborted = openBus(relay, {
    signal: controller.signal,
    onStateChange: (s) => void states.push(s),
  });
  controller.abort();
  await aborted.close();
  assert.equal(aborted.state, "closed");
  assert.deepEqual(states.at(-1), "closed");
});

Deno.test("error codes are classified and bus URLs built from the relay URL", () => {
  assert.equal(classifyBusError("unauthorized"), "auth");
  assert.equal(classifyBusError("TOKEN_EXPIRED"), "auth");
  assert.equal(classifyBusError("forbidden"), "auth");
  assert.equal(classifyBusError("agent_removed"), "fatal");
  assert.equal(classifyBusError("fatal"), "fatal");
  assert.equal(classifyBusError("bad_frame"), "info");
  assert.equal(
    busUrl("http://127.0.0.1:8787", "agent one"),
    "ws://127.0.0.1:8787/api/bus?agentId=agent+one&role=provider",
  );
  assert.equal(
    busUrl("https://localhost/relay/", "a", "observer"),
    "wss://localhost/relay/api/bus?agentId=a&role=observer",
  );
});
