/**
 * A mock OpenAI Responses API for driving the real Codex CLI offline.
 *
 * `POST /v1/responses` answers with a server-sent-event stream that ends in `response.completed`,
 * as Codex expects. Replies are scripted: a queue of {@linkcode MockReply} values, one per
 * request, then a fallback (a plain text reply unless changed). Every request is recorded.
 *
 * It listens on 127.0.0.1 (TCP) or on a unix socket path; the unix form is how a test in the
 * parent network namespace serves a Codex CLI running inside a loopback-only namespace (see
 * tests/support/codex_sandbox.ts). Run standalone, it serves TCP and prints its port:
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 tests/support/mock_openai.ts --port 0 --reply "hello"
 * ```
 *
 * @module
 */

/** One scripted answer to one `POST /v1/responses`. */
export type MockReply =
  /** An assistant message. */
  | { type: "text"; text: string; usage?: MockUsage }
  /** A `function_call` (Codex's shell tool is `exec_command` with `{cmd}`). */
  | { type: "function_call"; name: string; arguments: Record<string, unknown>; callId?: string }
  /** An HTTP error status with a JSON error body (e.g. 500). */
  | { type: "error"; status: number; message?: string }
  /** Starts the stream and never completes it (until the client goes away or the mock closes). */
  | { type: "hang" };

/** Token counts put in `response.completed`. */
export interface MockUsage {
  inputTokens: number;
  outputTokens: number;
  cachedTokens?: number;
}

/** A request the mock received. */
export interface RecordedRequest {
  method: string;
  path: string;
  /** The parsed JSON body, or the raw text when it is not JSON. */
  body: unknown;
  /** The reply the mock chose (`undefined` for paths other than `/v1/responses`). */
  reply?: MockReply;
}

/** Where the mock listens. */
export type MockListen = { port?: number } | { path: string };

/** A running mock. */
export interface MockOpenAI {
  /** The TCP base URL (`http://127.0.0.1:PORT/v1`), or `undefined` on a unix socket. */
  readonly baseUrl: string | undefined;
  /** The unix socket path, or `undefined` on TCP. */
  readonly path: string | undefined;
  /** Every request so far, oldest first. */
  readonly requests: readonly RecordedRequest[];
  /** Queues replies for the next `POST /v1/responses` requests, in order. */
  enqueue(...replies: MockReply[]): void;
  /** Sets the reply used when the queue is empty. */
  setFallback(reply: MockReply): void;
  /** Resolves with the `index`-th `/v1/responses` request (0-based) once it has arrived. */
  responsesRequest(index: number, options?: { signal?: AbortSignal }): Promise<RecordedRequest>;
  /** Ends hanging streams and stops the server. */
  close(): Promise<void>;
}

const DEFAULT_USAGE: MockUsage = { inputTokens: 11, outputTokens: 7, cachedTokens: 3 };

function sse(events: Record<string, unknown>[]): string {
  return events.map((e) => `event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`).join("");
}

function usageJson(u: MockUsage): Record<string, unknown> {
  return {
    input_tokens: u.inputTokens,
    input_tokens_details: { cached_tokens: u.cachedTokens ?? 0 },
    output_tokens: u.outputTokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: u.inputTokens + u.outputTokens,
  };
}

/** The SSE events of a completed reply (text or function call). */
export function replyEvents(reply: MockReply, seq: number): Record<string, unknown>[] {
  const responseId = `resp_${seq}`;
  const created = {
    type: "response.created",
    response: { id: responseId, object: "response", status: "in_progress", output: [] },
  };
  if (reply.type === "text") {
    const itemId = `msg_${seq}`;
    const part = { type: "output_text", text: reply.text, annotations: [] };
    const item = {
      type: "message",
      id: itemId,
      role: "assistant",
      status: "completed",
      content: [part],
    };
    return [
      created,
      {
        type: "response.output_item.added",
        output_index: 0,
        item: { ...item, status: "in_progress", content: [] },
      },
      {
        type: "response.content_part.added",
        item_id: itemId,
        output_index: 0,
        content_index: 0,
        part: { ...part, text: "" },
      },
      {
        type: "response.output_text.delta",
        item_id: itemId,
        output_index: 0,
        content_index: 0,
        delta: reply.text,
      },
      {
        type: "response.output_text.done",
        item_id: itemId,
        output_index: 0,
        content_index: 0,
        text: reply.text,
      },
      { type: "response.output_item.done", output_index: 0, item },
      {
        type: "response.completed",
        response: {
          id: responseId,
          object: "response",
          status: "completed",
          output: [item],
          usage: usageJson(reply.usage ?? DEFAULT_USAGE),
        },
      },
    ];
  }
  if (reply.type === "function_call") {
    const item = {
      type: "function_call",
      id: `fc_${seq}`,
      call_id: reply.callId ?? `call_${seq}`,
      name: reply.name,
      arguments: JSON.stringify(reply.arguments),
      status: "completed",
    };
    return [
      created,
      {
        type: "response.output_item.added",
        output_index: 0,
        item: { ...item, status: "in_progress", arguments: "" },
      },
      { type: "response.output_item.done", output_index: 0, item },
      {
        type: "response.completed",
        response: {
          id: responseId,
          object: "response",
          status: "completed",
          output: [item],
          usage: usageJson(DEFAULT_USAGE),
        },
      },
    ];
  }
  return [created];
}

/** Starts the mock on 127.0.0.1 (default, any free port) or on a unix socket path. */
export function startMockOpenAI(listen: MockListen = {}): MockOpenAI {
  const requests: RecordedRequest[] = [];
  const queue: MockReply[] = [];
  let fallback: MockReply = { type: "text", text: "ok" };
  let seq = 0;
  const waiters: { index: number; resolve: (r: RecordedRequest) => void }[] = [];
  const hanging = new Set<ReadableStreamDefaultController<Uint8Array>>();
  const responsesOnly = () => requests.filter((r) => r.path === "/v1/responses");

  const notify = () => {
    const list = responsesOnly();
    for (const w of [...waiters]) {
      const r = list[w.index];
      if (r) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(r);
      }
    }
  };

  const handler = async (req: Request): Promise<Response> => {
    const url = new URL(req.url, "http://mock");
    const text = await req.text();
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      // keep the raw text
    }
    const record: RecordedRequest = { method: req.method, path: url.pathname, body };
    if (!(req.method === "POST" && url.pathname === "/v1/responses")) {
      requests.push(record);
      return Response.json({ error: { message: `no mock for ${req.method} ${url.pathname}` } }, {
        status: 404,
      });
    }
    const reply = queue.shift() ?? fallback;
    record.reply = reply;
    requests.push(record);
    notify();
    seq++;
    if (reply.type === "error") {
      return Response.json(
        { error: { message: reply.message ?? "mock failure", type: "server_error" } },
        { status: reply.status },
      );
    }
    const headers = { "content-type": "text/event-stream", "cache-control": "no-cache" };
    const encoded = new TextEncoder().encode(sse(replyEvents(reply, seq)));
    if (reply.type !== "hang") return new Response(encoded, { headers });
    let ctl: ReadableStreamDefaultController<Uint8Array> | undefined;
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        ctl = c;
        hanging.add(c);
        c.enqueue(encoded);
      },
      cancel() {
        if (ctl) hanging.delete(ctl);
      },
    });
    return new Response(stream, { headers });
  };

  const onListen = () => {};
  const server = "path" in listen
    ? Deno.serve({ path: listen.path, onListen }, handler)
    : Deno.serve({ hostname: "127.0.0.1", port: listen.port ?? 0, onListen }, handler);
  const addr = server.addr;
  const baseUrl = addr.transport === "tcp" ? `http://127.0.0.1:${addr.port}/v1` : undefined;

  return {
    baseUrl,
    path: "path" in listen ? listen.path : undefined,
    requests,
    enqueue(...replies) {
      queue.push(...replies);
    },
    setFallback(reply) {
      fallback = reply;
    },
    responsesRequest(index, options = {}) {
      const existing = responsesOnly()[index];
      if (existing) return Promise.resolve(existing);
      return new Promise((resolve, reject) => {
        const waiter = {
          index,
          resolve: (r: RecordedRequest) => {
            options.signal?.removeEventListener("abort", onAbort);
            resolve(r);
          },
        };
        const onAbort = () => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`Mock request ${index} did not arrive: ${options.signal?.reason}`));
        };
        options.signal?.addEventListener("abort", onAbort, { once: true });
        waiters.push(waiter);
      });
    },
    async close() {
      for (const c of hanging) {
        try {
          c.close();
        } catch {
          // already closed by the client going away
        }
      }
      hanging.clear();
      await server.shutdown();
    },
  };
}

/** The texts of the user messages in a Responses API request body. */
export function userTexts(body: unknown): string[] {
  const input = (body as { input?: unknown[] })?.input ?? [];
  const texts: string[] = [];
  for (const item of input) {
    const i = item as { role?: string; content?: { type?: string; text?: string }[] };
    if (i.role !== "user" || !Array.isArray(i.content)) continue;
    for (const c of i.content) if (c.type === "input_text" && c.text) texts.push(c.text);
  }
  return texts;
}

if (import.meta.main) {
  const { parseArgs } = await import("node:util");
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      port: { type: "string", default: "0" },
      reply: { type: "string", default: "ok" },
      fail: { type: "string" },
    },
  });
  const mock = startMockOpenAI({ port: Number(values.port) });
  mock.setFallback(
    values.fail
      ? { type: "error", status: Number(values.fail) }
      : { type: "text", text: values.reply },
  );
  const port = new URL(mock.baseUrl ?? "http://127.0.0.1:0").port;
  // deno-lint-ignore no-console
  console.log(port);
  Deno.addSignalListener("SIGTERM", () => {
    mock.close().then(() => Deno.exit(0));
  });
}
