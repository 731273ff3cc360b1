/**
 * A JSON-RPC client for `codex app-server`: newline-delimited JSON over a byte stream pair, in
 * the app-server's dialect (no `"jsonrpc"` field).
 *
 * It owns request ids and their timeouts, routes the peer's notifications and server->client
 * requests to handlers, and always answers a server->client request (with the handler's result,
 * or an error when there is no handler or it failed), so the peer is never left waiting. A line
 * that is not a JSON object is reported and skipped; it never breaks the stream. When the peer's
 * output ends, every pending request is rejected with {@linkcode RpcClosedError}.
 *
 * @module
 */
import { errorText } from "../util/mod.ts";

/** A request id: the app-server accepts strings and numbers. */
export type RpcId = string | number;

/** An error answer from the peer (`{code, message, data?}`). */
export class RpcResponseError extends Error {
  /** The JSON-RPC error code. */
  readonly code: number;
  /** The error's `data`, if any. */
  readonly data: unknown;
  constructor(method: string, code: number, message: string, data?: unknown) {
    super(`Codex answered ${method} with error ${code}: ${message}`);
    this.name = "RpcResponseError";
    this.code = code;
    this.data = data;
  }
}

/** A request that got no answer in time. */
export class RpcTimeoutError extends Error {
  constructor(method: string, timeoutMs: number) {
    super(`Codex did not answer ${method} within ${timeoutMs} ms`);
    this.name = "RpcTimeoutError";
  }
}

/** The connection ended (or was closed) before an answer came. */
export class RpcClosedError extends Error {
  constructor(method: string, cause?: string) {
    super(`Codex connection closed before ${method} was answered${cause ? `: ${cause}` : ""}`);
    this.name = "RpcClosedError";
  }
}

/** An error a request handler throws to answer with a specific JSON-RPC error. */
export class RpcHandlerError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.name = "RpcHandlerError";
    this.code = code;
  }
}

/** JSON-RPC "method not found". */
export const METHOD_NOT_FOUND = -32601;
/** JSON-RPC "internal error". */
export const INTERNAL_ERROR = -32603;

/** The two byte streams of the peer: what it writes (`readable`) and its input (`writable`). */
export interface RpcTransport {
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
}

/** Options for {@linkcode CodexRpcClient}. */
export interface CodexRpcClientOptions {
  /** A notification from the peer. Must not throw (errors are reported and swallowed). */
  onNotification?(method: string, params: unknown): void;
  /**
   * A server->client request; the returned value (or promise) is the result. Throw a
   * {@linkcode RpcHandlerError} to answer with that error; any other throw answers
   * {@linkcode INTERNAL_ERROR}. Without a handler every request is answered
   * {@linkcode METHOD_NOT_FOUND}.
   */
  onRequest?(method: string, params: unknown, id: RpcId): unknown;
  /** A line that is not a JSON-RPC message, or a handler that threw. */
  onProtocolError?(message: string): void;
  /** The peer's output ended (`error` set when reading failed). Called once. */
  onClose?(error?: Error): void;
  /** Default timeout for {@linkcode CodexRpcClient.request}, ms (default 30 000). */
  requestTimeoutMs?: number;
}

interface Pending {
  method: string;
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout> | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** A newline-delimited JSON-RPC client for the Codex app-server. */
export class CodexRpcClient {
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #options: CodexRpcClientOptions;
  #pending = new Map<RpcId, Pending>();
  #nextId = 1;
  #closed = false;
  #writeClosed = false;
  #closeReason: string | undefined;
  #encoder = new TextEncoder();
  #done: Promise<void>;

  constructor(transport: RpcTransport, options: CodexRpcClientOptions = {}) {
    this.#options = options;
    this.#writer = transport.writable.getWriter();
    this.#reader = transport.readable.getReader();
    // A failed write shows up in the write's own promise; keep `closed` from going unhandled.
    this.#writer.closed.catch(() => {});
    this.#done = this.#readLoop();
  }

  /** Resolves once the peer's output has ended and every pending request is settled. */
  get done(): Promise<void> {
    return this.#done;
  }

  /** Whether the peer's output has ended (no more answers can come). */
  get closed(): boolean {
    return this.#closed;
  }

  /** How many requests await an answer. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Sends a request and resolves with its result. */
  request<T = unknown>(
    method: string,
    params?: unknown,
    options: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<T> {
    if (this.#closed || this.#writeClosed) {
      return Promise.reject(new RpcClosedError(method, this.#closeReason));
    }
    if (options.signal?.aborted) {
      return Promise.reject(
        new Error(`Codex request ${method} was aborted: ${options.signal.reason}`),
      );
    }
    const id = this.#nextId++;
    const timeoutMs = options.timeoutMs ?? this.#options.requestTimeoutMs ?? 30_000;
    return new Promise<T>((resolve, reject) => {
      const pending: Pending = {
        method,
        resolve: resolve as (v: unknown) => void,
        reject,
        timer: undefined,
        signal: options.signal,
        onAbort: undefined,
      };
      if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {
        pending.timer = setTimeout(() => {
          this.#settle(id, new RpcTimeoutError(method, timeoutMs));
        }, timeoutMs);
      }
      if (options.signal) {
        pending.onAbort = () =>
          this.#settle(
            id,
            new Error(`Codex request ${method} was aborted: ${options.signal?.reason}`),
          );
        options.signal.addEventListener("abort", pending.onAbort, { once: true });
      }
      this.#pending.set(id, pending);
      const message: Record<string, unknown> = { id, method };
      if (params !== undefined) message.params = params;
      this.#write(message).catch((e) => {
        this.#settle(id, new RpcClosedError(method, errorText(e)));
      });
    });
  }

  /** Sends a notification (no answer expected). Rejects when it could not be written. */
  notify(method: string, params?: unknown): Promise<void> {
    if (this.#writeClosed) return Promise.reject(new RpcClosedError(method, this.#closeReason));
    const message: Record<string, unknown> = { method };
    if (params !== undefined) message.params = params;
    return this.#write(message);
  }

  /**
   * Ends the peer's input (the app-server exits on end of input) and rejects pending requests.
   * Reading goes on until the peer's output ends; pass `cancelRead` to stop reading at once.
   */
  async close(options: { cancelRead?: boolean } = {}): Promise<void> {
    if (!this.#writeClosed) {
      this.#writeClosed = true;
      this.#closeReason ??= "the client closed it";
      for (const id of [...this.#pending.keys()]) {
        const p = this.#pending.get(id);
        if (p) this.#settle(id, new RpcClosedError(p.method, this.#closeReason));
      }
      // Not awaited: a peer that stopped reading would keep the close (and the caller) waiting.
      this.#writer.close().catch(() => {});
    }
    if (options.cancelRead) {
      await this.#reader.cancel().catch(() => {});
      await this.#done;
    }
  }

  async #write(message: Record<string, unknown>): Promise<void> {
    const line = JSON.stringify(message) + "\n";
    await this.#writer.write(this.#encoder.encode(line));
  }

  #settle(id: RpcId, error: Error | undefined, result?: unknown): void {
    const p = this.#pending.get(id);
    if (!p) return;
    this.#pending.delete(id);
    if (p.timer !== undefined) clearTimeout(p.timer);
    if (p.onAbort) p.signal?.removeEventListener("abort", p.onAbort);
    if (error) p.reject(error);
    else p.resolve(result);
  }

  async #readLoop(): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = "";
    let failure: Error | undefined;
    try {
      while (true) {
        const { value, done } = await this.#reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let nl: number;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          this.#handleLine(line);
        }
      }
      buffer += decoder.decode();
      if (buffer.trim()) this.#handleLine(buffer);
    } catch (e) {
      failure = e instanceof Error ? e : new Error(String(e));
    } finally {
      this.#reader.releaseLock();
    }
    this.#closed = true;
    this.#closeReason = failure ? `reading failed: ${failure.message}` : "the peer's output ended";
    for (const id of [...this.#pending.keys()]) {
      const p = this.#pending.get(id);
      if (p) this.#settle(id, new RpcClosedError(p.method, this.#closeReason));
    }
    try {
      this.#options.onClose?.(failure);
    } catch (e) {
      this.#protocolError(`onClose handler failed: ${errorText(e)}`);
    }
  }

  #protocolError(message: string): void {
    try {
      this.#options.onProtocolError?.(message);
    } catch {
      // a reporting hook must not break the read loop
    }
  }

  #handleLine(raw: string): void {
    const line = raw.trim();
    if (!line) return;
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch (e) {
      this.#protocolError(`Codex wrote a line that is not JSON (${errorText(e)}): ${clip(line)}`);
      return;
    }
    if (!isObject(message)) {
      this.#protocolError(`Codex wrote JSON that is not an object: ${clip(line)}`);
      return;
    }
    const id = message.id;
    const hasId = typeof id === "string" || typeof id === "number";
    const method = message.method;
    if (typeof method === "string") {
      if (hasId) this.#serveRequest(method, message.params, id);
      else {
        try {
          this.#options.onNotification?.(method, message.params);
        } catch (e) {
          this.#protocolError(`Notification handler for ${method} failed: ${errorText(e)}`);
        }
      }
      return;
    }
    if (hasId && ("result" in message || "error" in message)) {
      const p = this.#pending.get(id);
      if (!p) {
        this.#protocolError(`Codex answered unknown request id ${JSON.stringify(id)}`);
        return;
      }
      if ("error" in message && message.error !== undefined && message.error !== null) {
        const err = isObject(message.error) ? message.error : {};
        const code = typeof err.code === "number" ? err.code : INTERNAL_ERROR;
        const text = typeof err.message === "string" ? err.message : JSON.stringify(message.error);
        this.#settle(id, new RpcResponseError(p.method, code, text, err.data));
      } else {
        this.#settle(id, undefined, message.result);
      }
      return;
    }
    this.#protocolError(
      `Codex wrote a message that is neither request, answer nor notification: ${clip(line)}`,
    );
  }

  #serveRequest(method: string, params: unknown, id: RpcId): void {
    const answer = (body: Record<string, unknown>) => {
      if (this.#writeClosed) return;
      this.#write({ id, ...body }).catch((e) => {
        this.#protocolError(`Could not answer Codex request ${method}: ${errorText(e)}`);
      });
    };
    const handler = this.#options.onRequest;
    if (!handler) {
      answer({ error: { code: METHOD_NOT_FOUND, message: `Unsupported request ${method}` } });
      return;
    }
    let result: unknown;
    try {
      result = handler(method, params, id);
    } catch (e) {
      answer({ error: handlerError(method, e) });
      return;
    }
    Promise.resolve(result).then(
      (value) => answer({ result: value ?? {} }),
      (e) => answer({ error: handlerError(method, e) }),
    );
  }
}

function handlerError(method: string, e: unknown): { code: number; message: string } {
  if (e instanceof RpcHandlerError) return { code: e.code, message: e.message };
  return { code: INTERNAL_ERROR, message: `Handling ${method} failed: ${errorText(e)}` };
}

function clip(text: string, max = 200): string {
  return text.length > max ? `${text.slice(0, max)}...` : text;
}
