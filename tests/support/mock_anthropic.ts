/**
 * A mock Anthropic Messages API for driving the real Claude Code CLI offline.
 *
 * `POST /v1/messages` (any query string) answers with SSE streaming (`message_start`,
 * `content_block_start`, `content_block_delta`, `content_block_stop`, `message_delta`,
 * `message_stop`) or plain JSON when `stream` is false. The `messages` array may hold
 * `role: "system"` entries (Claude Code sends them). Every request is recorded.
 *
 * Replies are scripted by rules, checked in order against the text of the user entries after the
 * last assistant entry (text blocks and tool results): the first rule whose `match` occurs in it answers, else the
 * `fallback`. Rules are stateless so a restarted CLI (resume) gets the same answers. A reply is
 * a list of blocks: `{text}`, `{thinking}`, `{tool_use: {name, input}}`, `{hang: true}` (the
 * stream opens and never ends, for watchdog tests), `{error: {status, type, message}}` (an
 * HTTP error answer in the API's error shape), a leading `{delayMs}` (answer that much later), or
 * a leading `{gate}` (answer once the test calls `open(gate)`: a positive signal instead of a
 * delay long enough, in-process only).
 *
 * Standalone (inside a network namespace, for example):
 * `deno run -A tests/support/mock_anthropic.ts --port 0 --script FILE [--record FILE]` prints
 * `{"port": N}` on stdout once listening and appends each request as one JSON line to the
 * record file.
 *
 * @module
 */
import { parseArgs } from "node:util";

/** One block of a scripted reply. */
export type MockBlock =
  | { text: string }
  | { thinking: string }
  | { tool_use: { name: string; input: unknown; id?: string } }
  | { hang: true }
  /** Answer the whole request with this HTTP error instead (only as a reply's first block). */
  | { error: { status: number; type: string; message: string } }
  /** Wait this long before answering (only as a reply's first block). */
  | { delayMs: number }
  /** Answer only once `open(gate)` is called, or at once if it was (only as the first block). */
  | { gate: string };

/** A scripted rule: when the last message contains `match`, answer with `reply`. */
export interface MockRule {
  match: string;
  reply: MockBlock[];
}

/** The mock's script. */
export interface MockScript {
  rules: MockRule[];
  /** The reply when no rule matches (default: one text block "ok"). */
  fallback?: MockBlock[];
}

/** A request the mock received. */
export interface MockRequest {
  method: string;
  path: string;
  body: unknown;
  /** The text the rules were matched against (the last message), for `/v1/messages`. */
  lastText?: string;
  at: number;
}

/** A running mock. */
export interface MockAnthropic {
  port: number;
  /** `http://127.0.0.1:<port>`. */
  url: string;
  requests: MockRequest[];
  /** The `/v1/messages` requests only. */
  messageRequests(): MockRequest[];
  /** Opens `gate` for good: the requests waiting on it are answered, and later ones at once. */
  open(gate: string): void;
  close(): Promise<void>;
}

/** Options of {@linkcode startMockAnthropic}. */
export interface MockAnthropicOptions {
  /** TCP port on 127.0.0.1 (0 = any). Ignored when `path` is given. */
  port?: number;
  /** Listen on this Unix socket instead of TCP. */
  path?: string;
  /** Called with each request as it is recorded. */
  onRequest?: (request: MockRequest) => void;
  signal?: AbortSignal;
}

let toolIds = 0;

/** The text of a message's content: text blocks and tool results, joined by newlines. */
export function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  const parts: string[] = [];
  for (const block of content) {
    if (typeof block !== "object" || block === null) continue;
    const b = block as Record<string, unknown>;
    if (b.type === "text" && typeof b.text === "string") parts.push(b.text);
    if (b.type === "tool_result") parts.push(contentText(b.content));
  }
  return parts.join("\n");
}

/**
 * The text the rules match against: the `user` entries after the last `assistant` entry of a
 * Messages API `messages` array (Claude Code appends `role: "system"` entries, which are skipped).
 */
export function lastMessageText(body: unknown): string {
  if (typeof body !== "object" || body === null) return "";
  const messages = (body as { messages?: unknown }).messages;
  if (!Array.isArray(messages)) return "";
  const parts: string[] = [];
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i] as { role?: unknown; content?: unknown } | undefined;
    if (m?.role === "assistant") break;
    if (m?.role === "user") parts.unshift(contentText(m.content));
  }
  return parts.join("\n");
}

/** The reply a script gives for a last-message text. */
export function pickReply(script: MockScript, text: string): MockBlock[] {
  for (const rule of script.rules) if (text.includes(rule.match)) return rule.reply;
  return script.fallback ?? [{ text: "ok" }];
}

function sse(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

function usageOf(inputTokens: number, outputTokens: number) {
  return {
    input_tokens: inputTokens,
    output_tokens: outputTokens,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
  };
}

function messageId(): string {
  return `msg_mock_${crypto.randomUUID().replaceAll("-", "")}`;
}

function toolId(block: { tool_use: { id?: string } }): string {
  return block.tool_use.id ?? `toolu_mock_${++toolIds}_${Date.now()}`;
}

function streamReply(
  model: string,
  blocks: MockBlock[],
  hanging: Set<ReadableStreamDefaultController>,
): ReadableStream {
  const encoder = new TextEncoder();
  let self: ReadableStreamDefaultController | undefined;
  return new ReadableStream({
    cancel() {
      if (self) hanging.delete(self);
    },
    start(controller) {
      const push = (event: string, data: unknown) =>
        controller.enqueue(encoder.encode(sse(event, data)));
      push("message_start", {
        type: "message_start",
        message: {
          id: messageId(),
          type: "message",
          role: "assistant",
          model,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: usageOf(12, 1),
        },
      });
      let stop = "end_turn";
      let index = 0;
      for (const block of blocks) {
        if ("error" in block || "delayMs" in block || "gate" in block) continue;
        if ("hang" in block) {
          // Keep the stream open until the client goes away or the mock closes.
          self = controller;
          hanging.add(controller);
          return;
        }
        if ("text" in block) {
          push("content_block_start", {
            type: "content_block_start",
            index,
            content_block: { type: "text", text: "" },
          });
          push("content_block_delta", {
            type: "content_block_delta",
            index,
            delta: { type: "text_delta", text: block.text },
          });
        } else if ("thinking" in block) {
          push("content_block_start", {
            type: "content_block_start",
            index,
            content_block: { type: "thinking", thinking: "", signature: "" },
          });
          push("content_block_delta", {
            type: "content_block_delta",
            index,
            delta: { type: "thinking_delta", thinking: block.thinking },
          });
          push("content_block_delta", {
            type: "content_block_delta",
            index,
            delta: { type: "signature_delta", signature: "mock-signature" },
          });
        } else {
          stop = "tool_use";
          push("content_block_start", {
            type: "content_block_start",
            index,
            content_block: {
              type: "tool_use",
              id: toolId(block),
              name: block.tool_use.name,
              input: {},
            },
          });
          push("content_block_delta", {
            type: "content_block_delta",
            index,
            delta: { type: "input_json_delta", partial_json: JSON.stringify(block.tool_use.input) },
          });
        }
        push("content_block_stop", { type: "content_block_stop", index });
        index++;
      }
      push("message_delta", {
        type: "message_delta",
        delta: { stop_reason: stop, stop_sequence: null },
        usage: { output_tokens: 7 },
      });
      push("message_stop", { type: "message_stop" });
      controller.close();
    },
  });
}

function jsonReply(model: string, blocks: MockBlock[]): unknown {
  const content: unknown[] = [];
  let stop = "end_turn";
  for (const block of blocks) {
    if ("hang" in block || "error" in block || "delayMs" in block || "gate" in block) continue;
    if ("text" in block) content.push({ type: "text", text: block.text });
    else if ("thinking" in block) {
      content.push({ type: "thinking", thinking: block.thinking, signature: "mock-signature" });
    } else {
      stop = "tool_use";
      content.push({
        type: "tool_use",
        id: toolId(block),
        name: block.tool_use.name,
        input: block.tool_use.input,
      });
    }
  }
  return {
    id: messageId(),
    type: "message",
    role: "assistant",
    model,
    content,
    stop_reason: stop,
    stop_sequence: null,
    usage: usageOf(12, 7),
  };
}

/** Starts the mock on 127.0.0.1 (or a Unix socket) with a script. */
export function startMockAnthropic(
  script: MockScript,
  options: MockAnthropicOptions = {},
): Promise<MockAnthropic> {
  const requests: MockRequest[] = [];
  const hanging = new Set<ReadableStreamDefaultController>();
  const delays = new Set<() => void>();
  const opened = new Set<string>();
  const gated = new Map<string, Set<() => void>>();
  const abort = new AbortController();
  options.signal?.addEventListener("abort", () => abort.abort(), { once: true });
  const handler = async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    let body: unknown = undefined;
    const raw = req.method === "GET" || req.method === "HEAD" ? "" : await req.text();
    if (raw !== "") {
      try {
        body = JSON.parse(raw);
      } catch {
        body = raw;
      }
    }
    const record: MockRequest = { method: req.method, path: url.pathname, body, at: Date.now() };
    if (req.method === "POST" && url.pathname === "/v1/messages") {
      record.lastText = lastMessageText(body);
    }
    requests.push(record);
    options.onRequest?.(record);
    if (record.lastText === undefined) {
      if (url.pathname === "/v1/messages/count_tokens") {
        return Response.json({ input_tokens: 100 });
      }
      return Response.json({
        type: "error",
        error: { type: "not_found_error", message: "not here" },
      }, {
        status: 404,
      });
    }
    const b = (typeof body === "object" && body !== null ? body : {}) as {
      model?: unknown;
      stream?: unknown;
    };
    const model = typeof b.model === "string" ? b.model : "mock-model";
    let blocks = pickReply(script, record.lastText);
    const lead = blocks[0];
    if (lead !== undefined && "delayMs" in lead) {
      blocks = blocks.slice(1);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          delays.delete(done);
          resolve();
        }, lead.delayMs);
        const done = () => {
          clearTimeout(timer);
          resolve();
        };
        delays.add(done);
      });
    }
    if (lead !== undefined && "gate" in lead) {
      blocks = blocks.slice(1);
      if (!opened.has(lead.gate)) {
        await new Promise<void>((resolve) => {
          const done = () => {
            delays.delete(done);
            resolve();
          };
          delays.add(done);
          const waiting = gated.get(lead.gate) ?? new Set();
          waiting.add(done);
          gated.set(lead.gate, waiting);
        });
      }
    }
    const first = blocks[0];
    if (first !== undefined && "error" in first) {
      return Response.json(
        { type: "error", error: { type: first.error.type, message: first.error.message } },
        { status: first.error.status },
      );
    }
    if (b.stream !== true) return Response.json(jsonReply(model, blocks));
    return new Response(streamReply(model, blocks, hanging), {
      headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
    });
  };
  return new Promise((resolve) => {
    const onListen = (addr: Deno.NetAddr | Deno.UnixAddr) => {
      const port = "port" in addr ? addr.port : 0;
      resolve({
        port,
        url: `http://127.0.0.1:${port}`,
        requests,
        messageRequests: () => requests.filter((r) => r.lastText !== undefined),
        open: (gate) => {
          opened.add(gate);
          for (const done of gated.get(gate) ?? []) done();
          gated.delete(gate);
        },
        close: async () => {
          for (const controller of hanging) {
            try {
              controller.close();
            } catch { /* already closed */ }
          }
          hanging.clear();
          for (const done of delays) done();
          delays.clear();
          abort.abort();
          await server.finished;
        },
      });
    };
    const server = options.path === undefined
      ? Deno.serve({
        hostname: "127.0.0.1",
        port: options.port ?? 0,
        signal: abort.signal,
        onListen,
        handler,
      })
      : Deno.serve({ path: options.path, signal: abort.signal, onListen, handler });
  });
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      port: { type: "string", default: "0" },
      script: { type: "string" },
      record: { type: "string" },
    },
  });
  const script: MockScript = values.script === undefined
    ? { rules: [] }
    : JSON.parse(await Deno.readTextFile(values.script));
  const record = values.record;
  const mock = await startMockAnthropic(script, {
    port: Number(values.port),
    onRequest: (r) => {
      if (record !== undefined) {
        Deno.writeTextFileSync(record, JSON.stringify(r) + "\n", { append: true });
      }
    },
  });
  // deno-lint-ignore no-console
  console.log(JSON.stringify({ port: mock.port }));
  Deno.addSignalListener("SIGTERM", () => mock.close().then(() => Deno.exit(0)));
}
