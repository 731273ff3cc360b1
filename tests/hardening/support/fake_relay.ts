/**
 * A relay of the test's own on 127.0.0.1, for the attacks the reference relay would never make:
 * unread pages and bus frames it writes as it likes (bad ids, hostile text), answers it overrides
 * (error bodies with control characters), and a record of everything the runner posted (batch
 * items unpacked). Messages are served until marked read.
 *
 * @module
 */

/** A message as this relay serves it: any JSON the test wants (an id of `-5` included). */
export type RawMessage = Record<string, unknown>;

/** One call the runner made that carried a body (a batch item is recorded as `batch:<type>`). */
export interface Posted {
  path: string;
  body: Record<string, unknown> | null;
}

/** Options of {@linkcode startFakeRelay}. */
export interface FakeRelayOptions {
  /**
   * Answers a request instead of the default routes when it returns a response (a fault, a
   * hostile body); `undefined` falls through.
   */
  override?: (req: Request, url: URL) => Response | undefined;
}

/** A running fake relay. */
export interface FakeRelay {
  readonly url: string;
  readonly token: string;
  /** What the runner posted, in order. */
  readonly posted: Posted[];
  /** The ids the runner marked read. */
  readonly reads: Set<unknown>;
  /** Serves `message` in the unread list (until marked read). */
  addUnread(message: RawMessage): void;
  /** Sends `frame` (JSON) to every connected bus socket; returns how many got it. */
  push(frame: unknown): number;
  /** Bus sockets open now. */
  busSockets(): number;
  /** The replies posted (as single calls or batch items) with `replyTo` equal to `id`. */
  repliesTo(id: unknown): Array<Record<string, unknown>>;
  close(): Promise<void>;
}

/** A message with defaults for the fields the test does not care about. */
export function rawMessage(id: unknown, fields: RawMessage = {}): RawMessage {
  return {
    id,
    from: "bob",
    to: "victim",
    kind: "chat",
    body: `message ${String(id)}`,
    createdAt: new Date().toISOString(),
    ...fields,
  };
}

/** Starts the fake relay on 127.0.0.1 (a free port). */
export function startFakeRelay(options: FakeRelayOptions = {}): FakeRelay {
  const posted: Posted[] = [];
  const reads = new Set<unknown>();
  const unread: RawMessage[] = [];
  const sockets = new Set<WebSocket>();
  let nextId = 1_000;
  const json = (status: number, body: unknown) => Response.json(body, { status });
  const record = (path: string, body: Record<string, unknown> | null) => {
    posted.push({ path, body });
    const read = /^\/api\/messages\/([^/]+)\/read$/.exec(path);
    if (read) reads.add(Number(read[1]));
    if (path === "batch:mark-read" && body) reads.add(body["messageId"]);
  };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      const url = new URL(req.url);
      const overridden = options.override?.(req, url);
      if (overridden) {
        await req.body?.cancel();
        return overridden;
      }
      const path = url.pathname;
      if (path === "/api/bus") {
        const { socket, response } = Deno.upgradeWebSocket(req);
        socket.onopen = () => sockets.add(socket);
        socket.onclose = () => sockets.delete(socket);
        socket.onmessage = (event) => {
          try {
            const frame = JSON.parse(String(event.data)) as { type?: string };
            if (frame.type === "ping") socket.send(JSON.stringify({ type: "pong" }));
          } catch {
            // Not ours to judge.
          }
        };
        return response;
      }
      if (req.method === "GET" && path === "/api/messages") {
        const after = Number(url.searchParams.get("after") ?? "-Infinity");
        const page = unread.filter((m) =>
          !reads.has(m["id"]) && !(typeof m["id"] === "number" && m["id"] <= after)
        );
        return json(200, { messages: page });
      }
      if (req.method === "GET" && path.endsWith("/reply-obligations")) {
        return json(200, { obligations: [] });
      }
      if (req.method === "GET") return json(200, { ok: true });
      if (req.method === "POST") {
        const text = await req.text();
        let body: Record<string, unknown> | null = null;
        try {
          body = JSON.parse(text) as Record<string, unknown>;
        } catch {
          body = null;
        }
        record(path, body);
        if (path === "/api/batch") {
          const items = (body?.["items"] ?? []) as Array<Record<string, unknown>>;
          for (const item of items) record(`batch:${String(item["type"])}`, item);
          return json(200, {
            results: items.map(() => ({
              status: 200,
              message: rawMessage(nextId++, { from: "victim", to: "bob" }),
            })),
          });
        }
        if (path === "/api/messages") {
          return json(201, { message: rawMessage(nextId++, { ...body, from: "victim" }) });
        }
        if (path.endsWith("/receipts")) return json(201, { ok: true });
        return json(200, { ok: true });
      }
      return json(404, { error: "no such route" });
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    token: "fake-relay-token",
    posted,
    reads,
    addUnread: (message) => void unread.push(message),
    push: (frame) => {
      let sent = 0;
      for (const socket of sockets) {
        if (socket.readyState !== WebSocket.OPEN) continue;
        socket.send(typeof frame === "string" ? frame : JSON.stringify(frame));
        sent++;
      }
      return sent;
    },
    busSockets: () => [...sockets].filter((s) => s.readyState === WebSocket.OPEN).length,
    repliesTo: (id) =>
      posted.flatMap((p) => {
        const body = p.path === "batch:message"
          ? p.body?.["body"] as Record<string, unknown> | undefined
          : p.path === "/api/messages"
          ? p.body ?? undefined
          : undefined;
        return body && body["replyTo"] === id ? [body] : [];
      }),
    close: async () => {
      for (const socket of sockets) {
        try {
          socket.close();
        } catch {
          // Gone.
        }
      }
      await server.shutdown();
    },
  };
}
