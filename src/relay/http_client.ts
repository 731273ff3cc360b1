/**
 * The runner's HTTP client for the relay: one method per call of the contract's table
 * (docs/protocol.md), each bounded by a timeout and cancellable through an
 * `AbortSignal`, each failure a classified {@linkcode RelayError}.
 *
 * The client owns the bearer token: it renews it shortly before `expiresAt`, and after an
 * auth failure (401/403) it renews once and retries the call once. Concurrent calls share one
 * renewal. The token is never logged and never appears in an error message.
 *
 * The client does not retry transient failures itself; that is the outbox's job.
 *
 * @module
 */
import { getLogger } from "../logger.ts";
import type {
  HeartbeatInput,
  InsightInput,
  Message,
  PermissionDecision,
  PermissionRequest,
  ReplyObligation,
  SendMessageInput,
  TaskStatus,
} from "../types.ts";
import { type Clock, errorText, systemClock, type TimerId } from "../util/mod.ts";
import { classifyStatus, RelayError, scrub } from "./errors.ts";
import { isRecord, parseMessage, parseObligation, toEpochMs } from "./wire.ts";

const log = getLogger("relay-http");

/** Options of every call: cancel it with `signal`. */
export interface CallOptions {
  signal?: AbortSignal;
}

/** Options of {@linkcode RelayHttpClient}. */
export interface RelayHttpClientOptions {
  /** The relay's base URL, e.g. `http://127.0.0.1:8787`. */
  baseUrl: string;
  /** The bearer token (`AGENT_RELAY_TOKEN`). */
  token?: string;
  /** When `token` expires (ISO-8601 or epoch ms), if known. */
  tokenExpiresAt?: string | number;
  /** The `fetch` to use. Default: the global one. */
  fetch?: typeof fetch;
  /** Per-call timeout, milliseconds. Default 10 000. */
  timeoutMs?: number;
  /** Renew the token this long before it expires, milliseconds. Default 60 000. */
  renewBeforeMs?: number;
  /** Time and the per-call timeout timer. Default the system clock. */
  clock?: Clock;
  /** The time, epoch ms, when it should differ from `clock.now` (token expiry). */
  now?: () => number;
  /** Called after every successful renewal, with the new token and its expiry (epoch ms). */
  onTokenChange?: (token: string, expiresAt: number | undefined) => void;
}

/** The answer of {@linkcode RelayHttpClient.sendMessage}. */
export interface SentMessage {
  message: Message;
  /** True when the relay had already stored this idempotency key (HTTP 200, not 201). */
  duplicate: boolean;
}

/** A renewed token. */
export interface RenewedToken {
  token: string;
  /** Epoch milliseconds, when the relay said. */
  expiresAt: number | undefined;
}

/** The body of `POST /api/tasks/:taskId/status`. */
export interface TaskStatusInput {
  status: TaskStatus;
  agentId: string;
  metadata?: unknown;
}

/** A message's progress on its way through an agent, in order. */
export type ReceiptState = "received" | "handed" | "answered" | "failed";

/** The body of `POST /api/messages/:id/receipts`. */
export interface ReceiptInput {
  agentId: string;
  state: ReceiptState;
  /** Epoch milliseconds of the step. */
  at: number;
  /** One sentence: why a message failed, say. */
  detail?: string;
}

/** Options of {@linkcode RelayHttpClient.pollUnread}. */
export interface PollOptions extends CallOptions {
  /** At most this many messages. Default 100. */
  limit?: number;
  /** Only messages with ids above this one: the next page after a full one. */
  after?: number;
}

function retryAfterMs(header: string | null, now: number): number | undefined {
  if (header === null) return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function oneLine(text: string, max = 200): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max)}...` : flat;
}

interface Answer {
  status: number;
  data: unknown;
}

interface RequestSpec {
  method: string;
  path: string;
  body?: unknown;
}

/** The relay's HTTP API, for one runner. */
export class RelayHttpClient {
  readonly baseUrl: string;
  #token: string | undefined;
  #expiresAt: number | undefined;
  #fetch: typeof fetch;
  #timeoutMs: number;
  #renewBeforeMs: number;
  #clock: Clock;
  #now: () => number;
  #onTokenChange: ((token: string, expiresAt: number | undefined) => void) | undefined;
  #renewing: Promise<RenewedToken> | undefined;

  constructor(options: RelayHttpClientOptions) {
    let url: URL;
    try {
      url = new URL(options.baseUrl);
    } catch {
      throw new TypeError(`Relay base URL "${options.baseUrl}" is not a URL`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(`Relay base URL "${options.baseUrl}" must use http or https`);
    }
    this.baseUrl = url.href.replace(/\/+$/, "");
    this.#token = options.token || undefined;
    this.#expiresAt = toEpochMs(options.tokenExpiresAt);
    this.#fetch = options.fetch ?? globalThis.fetch;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#renewBeforeMs = options.renewBeforeMs ?? 60_000;
    this.#clock = options.clock ?? systemClock;
    this.#now = options.now ?? (() => this.#clock.now());
    this.#onTokenChange = options.onTokenChange;
  }

  /** The current bearer token (for the bus's upgrade request). Never log it. */
  get token(): string | undefined {
    return this.#token;
  }

  /** When the current token expires, epoch ms, if known. */
  get tokenExpiresAt(): number | undefined {
    return this.#expiresAt;
  }

  /** Replaces the token (an orchestrator handed a new one). Does not call `onTokenChange`. */
  setToken(token: string | undefined, expiresAt?: string | number): void {
    this.#token = token || undefined;
    this.#expiresAt = toEpochMs(expiresAt);
  }

  /** `POST /api/messages`. A repeated idempotency key answers the original (`duplicate`). */
  async sendMessage(input: SendMessageInput, options: CallOptions = {}): Promise<SentMessage> {
    const spec = { method: "POST", path: "/api/messages", body: input };
    const answer = await this.#call(spec, options);
    const message = isRecord(answer.data) ? parseMessage(answer.data["message"]) : undefined;
    if (!message) throw this.#unparseable(spec, "no message in the answer");
    return { message, duplicate: answer.status === 200 };
  }

  /** `GET /api/messages?for=ID&unread=true&limit=N`: unread messages, malformed ones skipped. */
  async pollUnread(agentId: string, options: PollOptions = {}): Promise<Message[]> {
    const query = new URLSearchParams({
      for: agentId,
      unread: "true",
      limit: String(options.limit ?? 100),
      ...(options.after !== undefined ? { after: String(options.after) } : {}),
    });
    const spec = { method: "GET", path: `/api/messages?${query}` };
    const answer = await this.#call(spec, options);
    const list = isRecord(answer.data) ? answer.data["messages"] : undefined;
    if (!Array.isArray(list)) throw this.#unparseable(spec, "no messages array in the answer");
    const messages: Message[] = [];
    for (const item of list) {
      const message = parseMessage(item);
      if (message) messages.push(message);
      else {log.warn(
          `skipped a malformed message in the unread list: ${oneLine(JSON.stringify(item))}`,
        );}
    }
    return messages;
  }

  /** `POST /api/messages/:id/read`. */
  async markRead(messageId: number, agentId: string, options: CallOptions = {}): Promise<void> {
    await this.#call(
      { method: "POST", path: `/api/messages/${messageId}/read`, body: { agentId } },
      options,
    );
  }

  /**
   * `POST /api/messages/:id/receipts`: how far this agent got with a message. A relay without
   * the endpoint answers 404 or 405: the caller treats that as delivered.
   */
  async sendReceipt(
    messageId: number,
    input: ReceiptInput,
    options: CallOptions = {},
  ): Promise<void> {
    await this.#call(
      { method: "POST", path: `/api/messages/${messageId}/receipts`, body: input },
      options,
    );
  }

  /** `GET /api/agents/:id/reply-obligations`. */
  async replyObligations(agentId: string, options: CallOptions = {}): Promise<ReplyObligation[]> {
    const spec = {
      method: "GET",
      path: `/api/agents/${encodeURIComponent(agentId)}/reply-obligations`,
    };
    const answer = await this.#call(spec, options);
    const list = isRecord(answer.data) ? answer.data["obligations"] : undefined;
    if (!Array.isArray(list)) throw this.#unparseable(spec, "no obligations array in the answer");
    const obligations: ReplyObligation[] = [];
    for (const item of list) {
      const obligation = parseObligation(item);
      if (obligation) obligations.push(obligation);
      else log.warn(`skipped a malformed reply obligation: ${oneLine(JSON.stringify(item))}`);
    }
    return obligations;
  }

  /** `POST /api/insights`. A 409 (insights off) throws a `conflict` error: treat as delivered. */
  async recordInsight(input: InsightInput, options: CallOptions = {}): Promise<void> {
    await this.#call({ method: "POST", path: "/api/insights", body: input }, options);
  }

  /** `POST /api/tasks/:taskId/status`. */
  async setTaskStatus(
    taskId: string,
    input: TaskStatusInput,
    options: CallOptions = {},
  ): Promise<void> {
    await this.#call(
      { method: "POST", path: `/api/tasks/${encodeURIComponent(taskId)}/status`, body: input },
      options,
    );
  }

  /** `POST /api/agents/:id/heartbeat`. */
  async heartbeat(
    agentId: string,
    input: HeartbeatInput,
    options: CallOptions = {},
  ): Promise<void> {
    await this.#call(
      { method: "POST", path: `/api/agents/${encodeURIComponent(agentId)}/heartbeat`, body: input },
      options,
    );
  }

  /** `POST /api/agents/:id/permission-requests`: the relay's decision. */
  async askPermission(
    agentId: string,
    request: PermissionRequest,
    options: CallOptions = {},
  ): Promise<PermissionDecision> {
    const spec = {
      method: "POST",
      path: `/api/agents/${encodeURIComponent(agentId)}/permission-requests`,
      body: request,
    };
    const answer = await this.#call(spec, options);
    const data = answer.data;
    if (!isRecord(data) || (data["decision"] !== "allow" && data["decision"] !== "deny")) {
      throw this.#unparseable(spec, "no allow/deny decision in the answer");
    }
    const decision: PermissionDecision = { decision: data["decision"] };
    if (typeof data["reason"] === "string") decision.reason = data["reason"];
    return decision;
  }

  /** `DELETE /api/agents/:id`: the agent leaves (a deliberate exit). */
  async leave(agentId: string, options: CallOptions = {}): Promise<void> {
    await this.#call(
      { method: "DELETE", path: `/api/agents/${encodeURIComponent(agentId)}` },
      options,
    );
  }

  /**
   * `POST /api/tokens/renew`: swaps the token for a new one and calls `onTokenChange`.
   * Concurrent callers share one request.
   */
  renewToken(options: CallOptions = {}): Promise<RenewedToken> {
    if (this.#renewing) return this.#renewing;
    const renewing = this.#renew(options).finally(() => {
      if (this.#renewing === renewing) this.#renewing = undefined;
    });
    this.#renewing = renewing;
    return renewing;
  }

  async #renew(options: CallOptions): Promise<RenewedToken> {
    const spec = { method: "POST", path: "/api/tokens/renew", body: {} };
    const answer = await this.#send(spec, this.#token, options.signal);
    const data = answer.data;
    if (!isRecord(data) || typeof data["token"] !== "string" || data["token"] === "") {
      throw this.#unparseable(spec, "no token in the answer");
    }
    const token = data["token"];
    const expiresAt = toEpochMs(data["expiresAt"]);
    this.#token = token;
    this.#expiresAt = expiresAt;
    const when = expiresAt === undefined
      ? "no expiry"
      : `expires ${new Date(expiresAt).toISOString()}`;
    log.info(`relay token renewed (${when})`);
    try {
      this.#onTokenChange?.(token, expiresAt);
    } catch (error) {
      log.error(`token-change callback failed: ${errorText(error)}`);
    }
    return { token, expiresAt };
  }

  /** Renews ahead of expiry, then calls; after an auth failure renews once and retries once. */
  async #call(spec: RequestSpec, options: CallOptions): Promise<Answer> {
    if (this.#token && this.#expiresAt !== undefined) {
      if (this.#now() >= this.#expiresAt - this.#renewBeforeMs) {
        try {
          await this.renewToken(options);
        } catch (error) {
          // Go on with the old token: it may still be valid, and if not, the auth path below
          // tries once more.
          log.warn(`relay token renewal before expiry failed: ${errorText(error)}`);
        }
      }
    }
    const used = this.#token;
    try {
      return await this.#send(spec, used, options.signal);
    } catch (error) {
      if (!(error instanceof RelayError) || error.kind !== "auth" || !used) throw error;
      if (this.#token === used) {
        log.info(
          `relay answered ${error.status} to ${spec.method} ${
            pathOnly(spec.path)
          }; renewing the token`,
        );
        try {
          await this.renewToken(options);
        } catch (renewError) {
          throw new RelayError(
            `${error.message}; token renewal failed: ${errorText(renewError)}`,
            { kind: "auth", ...(error.status ? { status: error.status } : {}), cause: renewError },
          );
        }
      }
      return await this.#send(spec, this.#token, options.signal);
    }
  }

  /** One HTTP exchange, classified. */
  async #send(spec: RequestSpec, token: string | undefined, signal?: AbortSignal): Promise<Answer> {
    const what = `${spec.method} ${pathOnly(spec.path)}`;
    if (signal?.aborted) {
      throw new RelayError(`${what} was cancelled`, { kind: "transient", cause: signal.reason });
    }
    const timeout = new AbortController();
    const timer: TimerId = this.#clock.setTimeout(() => timeout.abort(), this.#timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout.signal]) : timeout.signal;
    const headers: Record<string, string> = { accept: "application/json" };
    if (token) headers["authorization"] = `Bearer ${token}`;
    if (spec.body !== undefined) headers["content-type"] = "application/json";
    const started = this.#now();
    try {
      let response: Response;
      let text: string;
      try {
        response = await this.#fetch(`${this.baseUrl}${spec.path}`, {
          method: spec.method,
          headers,
          ...(spec.body !== undefined ? { body: JSON.stringify(spec.body) } : {}),
          signal: combined,
        });
        text = await response.text();
      } catch (error) {
        if (signal?.aborted) {
          throw new RelayError(`${what} was cancelled`, { kind: "transient", cause: error });
        }
        if (timeout.signal.aborted) {
          throw new RelayError(`${what} timed out after ${this.#timeoutMs}ms`, {
            kind: "transient",
            cause: error,
          });
        }
        const reason = errorText(error);
        throw new RelayError(`${what} could not reach the relay: ${scrub(reason, token)}`, {
          kind: "transient",
          cause: error,
        });
      }
      log.debug(`${what} -> ${response.status} (${this.#now() - started}ms)`);
      if (response.status >= 200 && response.status < 300) {
        if (text.trim() === "") return { status: response.status, data: undefined };
        try {
          return { status: response.status, data: JSON.parse(text) };
        } catch {
          throw new RelayError(
            `${what} answered ${response.status} with a body that is not JSON: ${
              scrub(oneLine(text, 80), token)
            }`,
            { kind: "transient", status: response.status },
          );
        }
      }
      let detail = oneLine(text);
      try {
        const parsed = JSON.parse(text);
        if (isRecord(parsed) && typeof parsed["error"] === "string") {
          detail = oneLine(parsed["error"]);
        }
      } catch {
        // Not JSON: keep the text.
      }
      const kind = classifyStatus(response.status);
      const after = retryAfterMs(response.headers.get("retry-after"), this.#now());
      throw new RelayError(
        `${what} failed: ${response.status} ${response.statusText}${
          detail ? `: ${scrub(detail, token)}` : ""
        }`,
        { kind, status: response.status, ...(after !== undefined ? { retryAfterMs: after } : {}) },
      );
    } finally {
      this.#clock.clearTimeout(timer);
    }
  }

  #unparseable(spec: RequestSpec, why: string): RelayError {
    return new RelayError(
      `${spec.method} ${pathOnly(spec.path)} answered an unparseable body: ${why}`,
      {
        kind: "transient",
      },
    );
  }
}

function pathOnly(path: string): string {
  const q = path.indexOf("?");
  return q === -1 ? path : path.slice(0, q);
}
