/**
 * Byte limits on everything the relay sends (issue 16): message pages, other answers, error
 * answers and bus frames are read through a limit, never whole; the dev relay's request bodies
 * are counted as they stream in. Also: messages whose id is not a positive safe integer.
 *
 * @module
 */
import assert from "node:assert/strict";
import { startDevRelay } from "../../src/dev_relay/mod.ts";
import { firstMessageHint } from "../../src/relay/bounded_body.ts";
import { RelayBus } from "../../src/relay/bus_client.ts";
import { OversizedAnswerError, RelayError } from "../../src/relay/errors.ts";
import { RelayHttpClient } from "../../src/relay/http_client.ts";
import { parseMessage } from "../../src/relay/wire.ts";
import type { Message } from "../../src/types.ts";
import { RecordingLogger, waitFor } from "./helpers.ts";

const MiB = 1024 * 1024;
const encoder = new TextEncoder();

/** A stub relay on 127.0.0.1 that answers every request with `answer`. */
function stub(answer: (request: Request) => Response | Promise<Response>) {
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    answer,
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    async [Symbol.asyncDispose]() {
      ac.abort();
      await server.finished;
    },
  };
}

/**
 * A body of `head`, then `size` bytes of `x` made only as they are pulled (64 KiB at a time),
 * then `tail`; `produced()` says how many bytes were made.
 */
function lazyBody(head: string, size: number, tail: string) {
  let produced = 0;
  let sentHead = false;
  let sentTail = false;
  const chunk = encoder.encode("x".repeat(64 * 1024));
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (!sentHead) {
        sentHead = true;
        const bytes = encoder.encode(head);
        produced += bytes.length;
        return controller.enqueue(bytes);
      }
      if (produced < size) {
        produced += chunk.length;
        return controller.enqueue(chunk);
      }
      if (!sentTail) {
        sentTail = true;
        controller.enqueue(encoder.encode(tail));
        return controller.close();
      }
    },
  }, { highWaterMark: 0 });
  return { stream, produced: () => produced };
}

Deno.test("a 60 MB message in a page is cut at 4 MiB: transient, first message named, RSS bounded", async () => {
  const body = lazyBody(
    '{"messages":[{"id":7,"from":"mallory","to":"a1","kind":"chat",' +
      '"createdAt":"2024-01-01T00:00:00Z","payload":{"id":99},"body":"',
    60 * 1000 * 1000,
    '"}]}',
  );
  await using relay = stub(() =>
    new Response(body.stream, { headers: { "content-type": "application/json" } })
  );
  const client = new RelayHttpClient({ baseUrl: relay.url, token: "dev" });
  const before = Deno.memoryUsage().rss;
  let error: unknown;
  try {
    await client.pollUnread("a1", { limit: 1 });
  } catch (e) {
    error = e;
  }
  const grew = Deno.memoryUsage().rss - before;
  assert.ok(error instanceof OversizedAnswerError, `expected OversizedAnswerError, got ${error}`);
  assert.ok(error instanceof RelayError);
  assert.equal(error.kind, "transient");
  assert.equal(error.limit, 4 * MiB);
  assert.deepEqual(error.first, { id: 7, from: "mallory" });
  assert.match(error.message, /limit of 4194304 bytes \(first message #7 from mallory\)/);
  // The rest was never asked for (a stream made only as it is pulled, plus socket buffers).
  assert.ok(body.produced() < 24 * MiB, `the relay made ${body.produced()} bytes`);
  assert.ok(grew < 64 * MiB, `RSS grew by ${(grew / MiB).toFixed(1)} MiB`);
});

Deno.test("a content-length over the limit stops the read once the first bytes are in", async () => {
  const page = JSON.stringify({
    messages: [{ id: 3, from: "eve", to: "a1", kind: "chat", body: "y".repeat(300_000) }],
  });
  await using relay = stub(() =>
    new Response(page, { headers: { "content-type": "application/json" } })
  );
  const client = new RelayHttpClient({ baseUrl: relay.url, maxPageBytes: 100_000 });
  const error = await client.pollUnread("a1").catch((e) => e);
  assert.ok(error instanceof OversizedAnswerError);
  assert.equal(error.limit, 100_000);
  assert.deepEqual(error.first, { id: 3, from: "eve" });
});

Deno.test("every other answer is limited to 1 MiB (configurable); an error answer is cut, not refused", async () => {
  const big = JSON.stringify({ obligations: [], pad: "z".repeat(2 * MiB) });
  let status = 200;
  let errorBody: ReturnType<typeof lazyBody> | undefined;
  await using relay = stub(() => {
    if (status !== 200) {
      errorBody = lazyBody('{"error":"boom', 40 * MiB, '"}');
      return new Response(errorBody.stream, { status });
    }
    return new Response(big, { headers: { "content-type": "application/json" } });
  });
  const client = new RelayHttpClient({ baseUrl: relay.url });
  const error = await client.replyObligations("a1").catch((e) => e);
  assert.ok(error instanceof OversizedAnswerError);
  assert.equal(error.limit, MiB);
  assert.equal(error.first, undefined);

  // The same answer passes a larger configured limit.
  const roomy = new RelayHttpClient({ baseUrl: relay.url, maxAnswerBytes: 3 * MiB });
  assert.deepEqual(await roomy.replyObligations("a1"), []);
  // ...and a smaller one refuses a small answer.
  const tight = new RelayHttpClient({ baseUrl: relay.url, maxAnswerBytes: 10 });
  assert.ok(
    (await tight.heartbeat("a1", HEARTBEAT).catch((e) => e)) instanceof OversizedAnswerError,
  );
  assert.throws(() => new RelayHttpClient({ baseUrl: relay.url, maxPageBytes: 0 }), /maxPageBytes/);

  // A 40 MB error answer: classified by its status, its first bytes quoted, the rest unread.
  status = 503;
  const failed = await client.markRead(1, "a1").catch((e) => e);
  assert.ok(failed instanceof RelayError && !(failed instanceof OversizedAnswerError));
  assert.equal(failed.status, 503);
  assert.equal(failed.kind, "transient");
  assert.match(failed.message, /503/);
  assert.ok((errorBody?.produced() ?? 0) < 24 * MiB, "the error body was read whole");
});

const HEARTBEAT = {
  status: "idle" as const,
  provider: "command" as const,
  version: "0.1.0",
  pid: 1,
  host: "h",
};

Deno.test("firstMessageHint reads the first message's id and from, and nothing else", () => {
  const cases: Array<[string, { id: number; from: string } | undefined]> = [
    ['{"messages":[{"id":5,"from":"a","body":"xx', { id: 5, from: "a" }],
    ['{"messages": [ {"from": "b\\"q", "id": 12 , "body": "', { id: 12, from: 'b"q' }],
    // An id inside a payload, or in another top-level key, is not the message's.
    [
      '{"x":{"messages":[{"id":1,"from":"z"}]},"messages":[{"payload":{"id":9,"from":"p"},"id":4,"from":"c"',
      {
        id: 4,
        from: "c",
      },
    ],
    // Cut short: the id may be longer than what came.
    ['{"messages":[{"from":"a","id":12', undefined],
    ['{"messages":[{"id":5,"body":"xxxx', undefined],
    ['{"messages":[{"id":-5,"from":"a","body":"', undefined],
    ['{"messages":[{"id":1e308,"from":"a","body":"', undefined],
    ['{"messages":[{"id":"7","from":"a","body":"', undefined],
    ['{"messages":[{"id":5,"from":"","body":"', undefined],
    ["<html>", undefined],
    ["", undefined],
  ];
  for (const [text, expected] of cases) assert.deepEqual(firstMessageHint(text), expected, text);
});

Deno.test("messages whose id is not a positive safe integer are refused, on a page and on the bus", async () => {
  const base = { from: "u", to: "a1", kind: "chat", body: "b", createdAt: 0 };
  const bad = [-5, 1e308, 1.5, "7", 0, 2 ** 53];
  for (const id of bad) assert.equal(parseMessage({ ...base, id }), undefined, String(id));
  assert.equal(parseMessage({ ...base, id: 3, replyTo: -1 }), undefined);
  assert.equal(parseMessage({ ...base, id: 3 })?.id, 3);

  // Poll: the bad ones skipped with one log line each (the logger is the module's; count
  // what comes back instead).
  await using relay = stub(() =>
    Response.json({ messages: [...bad.map((id) => ({ ...base, id })), { ...base, id: 8 }] })
  );
  const client = new RelayHttpClient({ baseUrl: relay.url });
  assert.deepEqual((await client.pollUnread("a1")).map((m) => m.id), [8]);

  // Bus: same.
  await using bus = busStub((socket) => {
    for (const id of bad) {
      socket.send(JSON.stringify({ type: "message.new", message: { ...base, id } }));
    }
    socket.send(JSON.stringify({ type: "message.new", message: { ...base, id: 9 } }));
  });
  await waitFor(() => bus.got.length === 1, "the good message");
  assert.deepEqual(bus.got.map((m) => m.id), [9]);
  assert.equal(bus.logger.at("warn").filter((l) => /malformed message/.test(l)).length, bad.length);
});

Deno.test("a bus frame over the limit is dropped with one log line; the next frame still arrives", async () => {
  const base = { from: "u", to: "a1", kind: "chat", createdAt: 0 };
  await using bus = busStub((socket) => {
    socket.send(JSON.stringify({
      type: "message.new",
      message: { ...base, id: 1, body: "é".repeat(600 * 1024) }, // 1.2 MB as UTF-8
    }));
    socket.send(JSON.stringify({ type: "message.new", message: { ...base, id: 2, body: "ok" } }));
  });
  await waitFor(() => bus.got.length === 1, "the small message");
  assert.deepEqual(bus.got.map((m) => m.id), [2]);
  const dropped = bus.logger.at("warn").filter((l) =>
    /frame dropped: more than 1048576 bytes/.test(l)
  );
  assert.equal(dropped.length, 1);
});

/** A bus stub that runs `onOpen` for each connection, and a bus connected to it. */
function busStub(onOpen: (socket: WebSocket) => void) {
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    (req) => {
      const { socket, response } = Deno.upgradeWebSocket(req);
      socket.onopen = () => onOpen(socket);
      return response;
    },
  );
  const got: Message[] = [];
  const logger = new RecordingLogger();
  const bus = new RelayBus({
    baseUrl: `http://127.0.0.1:${server.addr.port}`,
    agentId: "a1",
    logger,
    pingIntervalMs: 0,
    onMessage: (m) => void got.push(m),
  });
  bus.start();
  return {
    got,
    logger,
    async [Symbol.asyncDispose]() {
      await bus.close();
      ac.abort();
      await server.finished;
    },
  };
}

Deno.test("the dev relay answers 413 as soon as a streamed body passes the limit", async () => {
  const started = await startDevRelay();
  await using relay = Object.assign(started, { [Symbol.asyncDispose]: () => started.close() });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: relay.port });
  try {
    await conn.write(encoder.encode(
      "POST /api/messages HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer dev\r\n" +
        "content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
    ));
    // Read the answer while writing up to 200 MB of chunks; stop writing once it came.
    let answered = false;
    const reading = (async () => {
      const buffer = new Uint8Array(4096);
      const n = await conn.read(buffer);
      answered = true;
      return new TextDecoder().decode(buffer.subarray(0, n ?? 0));
    })();
    const chunk = encoder.encode(`10000\r\n${"a".repeat(0x10000)}\r\n`);
    let written = 0;
    try {
      while (!answered && written < 200 * 1000 * 1000) {
        await conn.write(chunk);
        written += 0x10000;
      }
    } catch {
      // The relay closed the connection after its answer.
    }
    const head = await reading;
    assert.match(head, /^HTTP\/1\.1 413/);
    assert.match(head, /larger than 1048576 bytes/);
    assert.ok(written < 32 * MiB, `wrote ${written} bytes before the 413`);
  } finally {
    conn.close();
  }
  assert.equal(relay.admin.state().messages.length, 0);
});
