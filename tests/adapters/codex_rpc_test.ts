import assert from "node:assert/strict";
import {
  CodexRpcClient,
  type CodexRpcClientOptions,
  INTERNAL_ERROR,
  METHOD_NOT_FOUND,
  RpcClosedError,
  RpcHandlerError,
  RpcResponseError,
  RpcTimeoutError,
} from "../../src/adapters/codex_rpc.ts";

/** An in-memory peer: reads what the client writes, writes what the client reads. */
function peer(options: CodexRpcClientOptions = {}) {
  const toPeer = new TransformStream<Uint8Array, Uint8Array>();
  const toClient = new TransformStream<Uint8Array, Uint8Array>();
  const client = new CodexRpcClient(
    { readable: toClient.readable, writable: toPeer.writable },
    options,
  );
  const writer = toClient.writable.getWriter();
  const reader = toPeer.readable.getReader();
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  let buffer = "";
  return {
    client,
    /** Writes raw text to the client. */
    send: (text: string) => writer.write(enc.encode(text)),
    /** Writes raw bytes to the client. */
    sendBytes: (bytes: Uint8Array) => writer.write(bytes),
    /** Writes one message as a JSON line. */
    sendJson: (message: unknown) => writer.write(enc.encode(JSON.stringify(message) + "\n")),
    /** Reads the next line the client wrote, parsed; `null` at end of stream. */
    async receive(): Promise<Record<string, unknown> | null> {
      while (!buffer.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) return null;
        buffer += dec.decode(value, { stream: true });
      }
      const nl = buffer.indexOf("\n");
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      return JSON.parse(line);
    },
    /** Ends the client's input (as if the process exited). */
    end: () => writer.close(),
    async dispose() {
      await reader.cancel().catch(() => {});
      await client.close();
      await writer.close().catch(() => {});
      await client.done;
    },
  };
}

Deno.test("codex rpc: requests carry ids and no jsonrpc field; answers match by id", async () => {
  const p = peer();
  const a = p.client.request("first", { x: 1 });
  const b = p.client.request("second");
  const ra = await p.receive();
  const rb = await p.receive();
  assert.deepEqual(ra, { id: 1, method: "first", params: { x: 1 } });
  assert.deepEqual(rb, { id: 2, method: "second" });
  // Answered out of order.
  await p.sendJson({ id: 2, result: { b: true } });
  await p.sendJson({ id: 1, result: { a: true } });
  assert.deepEqual(await a, { a: true });
  assert.deepEqual(await b, { b: true });
  assert.equal(p.client.pendingCount, 0);
  await p.dispose();
});

Deno.test("codex rpc: an error answer rejects with its code and message", async () => {
  const p = peer();
  const a = p.client.request("turn/interrupt", {});
  await p.receive();
  await p.sendJson({ id: 1, error: { code: -32600, message: "no active turn to interrupt" } });
  const err = await a.catch((e) => e);
  assert.ok(err instanceof RpcResponseError);
  assert.equal(err.code, -32600);
  assert.match(err.message, /turn\/interrupt.*-32600.*no active turn to interrupt/);
  await p.dispose();
});

Deno.test("codex rpc: a request unanswered in time rejects; a late answer is reported", async () => {
  const problems: string[] = [];
  const p = peer({ onProtocolError: (m) => problems.push(m) });
  const err = await p.client.request("slow", undefined, { timeoutMs: 20 }).catch((e) => e);
  assert.ok(err instanceof RpcTimeoutError);
  assert.match(err.message, /slow within 20 ms/);
  await p.receive();
  await p.sendJson({ id: 1, result: {} });
  await p.sendJson({ method: "ping" }); // a later line proves the late answer was read
  const seen = await new Promise<string[]>((resolve) => {
    const check = () => problems.length ? resolve(problems) : setTimeout(check, 5);
    check();
  });
  assert.match(seen[0] ?? "", /unknown request id 1/);
  await p.dispose();
});

Deno.test("codex rpc: an aborted request rejects and is forgotten", async () => {
  const p = peer();
  const ctl = new AbortController();
  const a = p.client.request("x", undefined, { signal: ctl.signal });
  ctl.abort("stop now");
  await assert.rejects(a, /aborted: stop now/);
  assert.equal(p.client.pendingCount, 0);
  await p.dispose();
});

Deno.test("codex rpc: notifications reach the handler, split and CRLF lines included", async () => {
  const got: [string, unknown][] = [];
  const p = peer({ onNotification: (m, params) => got.push([m, params]) });
  const line = JSON.stringify({
    method: "item/agentMessage/delta",
    params: { delta: "h\u00e9llo" },
  });
  const bytes = new TextEncoder().encode(line + "\r\n\n");
  // Cut inside the two-byte character, so the decoder must carry a partial one over.
  const cut = new TextEncoder().encode(line.slice(0, line.indexOf("\u00e9"))).length + 1;
  await p.sendJson({ method: "a" });
  await p.sendBytes(bytes.slice(0, cut));
  await p.sendBytes(bytes.slice(cut));
  await p.send(JSON.stringify({ method: "b", params: [1] })); // last line without a newline
  await p.end();
  await p.client.done;
  assert.deepEqual(got, [
    ["a", undefined],
    ["item/agentMessage/delta", { delta: "h\u00e9llo" }],
    ["b", [1]],
  ]);
  await p.dispose();
});

Deno.test("codex rpc: bad lines are reported and skipped, the stream goes on", async () => {
  const problems: string[] = [];
  const got: string[] = [];
  const p = peer({
    onProtocolError: (m) => problems.push(m),
    onNotification: (m) => got.push(m),
  });
  await p.send('not json at all\n[1,2]\n{"what":1}\n');
  await p.sendJson({ method: "still/here" });
  await p.end();
  await p.client.done;
  assert.deepEqual(got, ["still/here"]);
  assert.equal(problems.length, 3);
  assert.match(problems[0] ?? "", /not JSON.*not json at all/);
  assert.match(problems[1] ?? "", /not an object/);
  assert.match(problems[2] ?? "", /neither request, answer nor notification/);
  await p.dispose();
});

Deno.test("codex rpc: server requests are always answered", async () => {
  const p = peer({
    onRequest: (method, params) => {
      if (method === "sync") return { echo: params };
      if (method === "async") return Promise.resolve({ later: true });
      if (method === "refuse") throw new RpcHandlerError(-32000, "refused on purpose");
      if (method === "reject") return Promise.reject(new Error("went wrong"));
      if (method === "nothing") return undefined;
      throw new RpcHandlerError(METHOD_NOT_FOUND, `no ${method}`);
    },
  });
  await p.sendJson({ id: "s1", method: "sync", params: { v: 1 } });
  assert.deepEqual(await p.receive(), { id: "s1", result: { echo: { v: 1 } } });
  await p.sendJson({ id: 5, method: "async" });
  assert.deepEqual(await p.receive(), { id: 5, result: { later: true } });
  await p.sendJson({ id: 6, method: "refuse" });
  assert.deepEqual(await p.receive(), {
    id: 6,
    error: { code: -32000, message: "refused on purpose" },
  });
  await p.sendJson({ id: 7, method: "reject" });
  const rejected = await p.receive();
  assert.equal((rejected?.error as { code: number }).code, INTERNAL_ERROR);
  assert.match((rejected?.error as { message: string }).message, /reject failed: went wrong/);
  await p.sendJson({ id: 8, method: "nothing" });
  assert.deepEqual(await p.receive(), { id: 8, result: {} });
  await p.sendJson({ id: 9, method: "other" });
  assert.deepEqual(await p.receive(), {
    id: 9,
    error: { code: METHOD_NOT_FOUND, message: "no other" },
  });
  await p.dispose();
});

Deno.test("codex rpc: without a request handler the answer is method-not-found", async () => {
  const p = peer();
  await p.sendJson({ id: 0, method: "item/tool/call", params: {} });
  const answer = await p.receive();
  assert.equal((answer?.error as { code: number }).code, METHOD_NOT_FOUND);
  assert.equal(answer?.id, 0);
  await p.dispose();
});

Deno.test("codex rpc: the peer's end rejects pending requests and closes once", async () => {
  let closes = 0;
  const p = peer({ onClose: () => closes++ });
  const a = p.client.request("never/answered");
  await p.receive();
  await p.end();
  const err = await a.catch((e) => e);
  assert.ok(err instanceof RpcClosedError);
  assert.match(err.message, /never\/answered.*output ended/);
  await p.client.done;
  assert.equal(p.client.closed, true);
  assert.equal(closes, 1);
  await assert.rejects(p.client.request("after"), RpcClosedError);
  await p.dispose();
  assert.equal(closes, 1);
});

Deno.test("codex rpc: close ends the peer's input and rejects what is pending", async () => {
  const p = peer();
  const a = p.client.request("pending");
  await p.receive();
  await p.client.close();
  await assert.rejects(a, RpcClosedError);
  assert.equal(await p.receive(), null, "the peer sees the end of its input");
  await assert.rejects(p.client.notify("late"), RpcClosedError);
  await p.end();
  await p.client.done;
  await p.dispose();
});

Deno.test("codex rpc: notify writes a message without id", async () => {
  const p = peer();
  const sent = Promise.all([
    p.client.notify("initialized"),
    p.client.notify("with/params", { a: 1 }),
  ]);
  assert.deepEqual(await p.receive(), { method: "initialized" });
  assert.deepEqual(await p.receive(), { method: "with/params", params: { a: 1 } });
  await sent;
  await p.dispose();
});

Deno.test("codex rpc: talks to a real peer process over its stdio", async () => {
  const script = `
    const dec = new TextDecoder(); let buf = "";
    for await (const chunk of Deno.stdin.readable) {
      buf += dec.decode(chunk, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\\n")) >= 0) {
        const msg = JSON.parse(buf.slice(0, nl)); buf = buf.slice(nl + 1);
        const out = [];
        if (msg.method === "initialize") {
          out.push({ method: "hello", params: { n: 1 } });
          out.push({ id: 100, method: "approve", params: {} });
          out.push({ id: msg.id, result: { userAgent: "fake" } });
        }
        if (msg.id === 100) out.push({ method: "approved", params: msg.result });
        await Deno.stdout.write(new TextEncoder().encode(out.map((o) => JSON.stringify(o) + "\\n").join("")));
      }
    }`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const notes: [string, unknown][] = [];
  const client = new CodexRpcClient({ readable: child.stdout, writable: child.stdin }, {
    onNotification: (m, p) => notes.push([m, p]),
    onRequest: () => ({ decision: "accept" }),
  });
  const result = await client.request("initialize", { clientInfo: { name: "t" } });
  assert.deepEqual(result, { userAgent: "fake" });
  while (notes.length < 2) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(notes, [["hello", { n: 1 }], ["approved", { decision: "accept" }]]);
  await client.close();
  const status = await child.status;
  assert.equal(status.code, 0);
  await client.done;
  assert.equal(client.closed, true);
});
