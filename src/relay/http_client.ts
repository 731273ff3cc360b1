/**
 * The runner's HTTP client for the relay: one method per call of the contract's table
 * (docs/protocol.md), each bounded by a timeout and cancellable through an
 * `AbortSignal`, each failure a classified {@linkcode RelayError}.
 *
 * The client owns the bearer token: it renews it shortly before `expiresAt`, and after an
 * auth failure (401/403) it renews once and retries the call once. Concurrent calls share one
 * renewal. The token is never logged and never appears in an error message.
 *
 * Every answer is read through a byte limit (`maxPageBytes` for a message page, `maxAnswerBytes`
 * for the rest): past it the body is cancelled and the call throws an
 * {@linkcode OversizedAnswerError}, never buffering the rest.
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
} from "../types.ts";
import { type Clock, errorText, systemClock, type TimerId } from "../util/mod.ts";
import {
  type Answer,
  answerOf,
  byteLimit,
  ERROR_DETAIL_BYTES,
  oneLine,
  oversized,
  pathOnly,
} from "./answer.ts";
import { readBounded } from "./bounded_body.ts";
import {
  type BatchItem,
  type BatchResult,
  MAX_BATCH_BYTES,
  MAX_BATCH_ITEMS,
  parseBatchResults,
  type ReceiptInput,
  type TaskStatusInput,
} from "./call_types.ts";
import { BatchUnsupportedError, OversizedAnswerError, RelayError, scrub } from "./errors.ts";
import { type ProbeOptions, probeRelay } from "./probe.ts";
import {
  isRecord,
  parseMessage,
  parseObligation,
  parseReceipt,
  type Receipt,
  toEpochMs,
} from "./wire.ts";

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
  /** The largest message page (`pollUnread`) read, bytes. Default 4 MiB. */
  maxPageBytes?: number;
  /** The largest answer to any other call read, bytes. Default 1 MiB. */
  maxAnswerBytes?: number;
}

/** The default byte limit of a message page. */
export const DEFAULT_MAX_PAGE_BYTES = 4 * 1024 * 1024;

/** The default byte limit of every other answer. */
export const DEFAULT_MAX_ANSWER_BYTES = 1024 * 1024;

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

/** Options of {@linkcode RelayHttpClient.pollUnread}. */
export interface PollOptions extends CallOptions {
  /** At most this many messages. Default 100. */
  limit?: number;
  /** Only messages with ids above this one: the next page after a full one. */
  after?: number;
}

interface RequestSpec {
  method: string;
  path: string;
  body?: unknown;
  /** The byte limit of the answer; default `maxAnswerBytes`. */
  limit?: number;
  /** A message page: an oversized answer names its first message when it can. */
  page?: boolean;
  /** The body already as JSON text (instead of `body`). */
  json?: string;
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
  #maxPageBytes: number;
  #maxAnswerBytes: number;

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
    this.#maxPageBytes = byteLimit(options.maxPageBytes, DEFAULT_MAX_PAGE_BYTES, "maxPageBytes");
    this.#maxAnswerBytes = byteLimit(
      options.maxAnswerBytes,
      DEFAULT_MAX_ANSWER_BYTES,
      "maxAnswerBytes",
    );
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
    const spec = {
      method: "GET",
      path: `/api/messages?${query}`,
      limit: this.#maxPageBytes,
      page: true,
    };
    const answer = await this.#call(spec, options);
    const list = isRecord(answer.data) ? answer.data["messages"] : undefined;
    if (!Array.isArray(list)) throw this.#unparseable(spec, "no messages array in the answer");
    const messages: Message[] = [];
    for (const item of list) {
      const message = parseMessage(item);
      if (message) messages.push(message);
      else {
        log.warn(
          `skipped a malformed message in the unread list: ${
            oneLine(String(JSON.stringify(item)))
          }`,
        );
      }
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

  /**
   * `GET /api/messages/:id/receipts`: every receipt the relay holds for a message, in the order
   * it stored them; malformed ones skipped. A relay without receipts answers 404 or 405.
   */
  async receipts(messageId: number, options: CallOptions = {}): Promise<Receipt[]> {
    const spec = { method: "GET", path: `/api/messages/${messageId}/receipts` };
    const answer = await this.#call(spec, options);
    const list = isRecord(answer.data) ? answer.data["receipts"] : undefined;
    if (!Array.isArray(list)) throw this.#unparseable(spec, "no receipts array in the answer");
    const receipts: Receipt[] = [];
    for (const item of list) {
      const receipt = parseReceipt(item);
      if (receipt) receipts.push(receipt);
      else log.warn(`skipped a malformed receipt: ${oneLine(String(JSON.stringify(item)))}`);
    }
    return receipts;
  }

  /**
   * `POST /api/batch`: several calls in one request, each applied as its single call would be;
   * one result per item, in order, each with the status the single call would have got. An
   * empty list sends nothing. A relay without the endpoint (404, 405) throws
   * {@linkcode BatchUnsupportedError}: send one call per item instead. At most
   * {@linkcode MAX_BATCH_ITEMS} items and `MAX_BATCH_BYTES` of JSON (a `RangeError` otherwise).
   */
  async sendBatch(items: readonly BatchItem[], options: CallOptions = {}): Promise<BatchResult[]> {
    if (items.length === 0) return [];
    if (items.length > MAX_BATCH_ITEMS) {
      throw new RangeError(
        `A batch of ${items.length} items is over the limit of ${MAX_BATCH_ITEMS}`,
      );
    }
    const json = JSON.stringify({ items });
    // A UTF-16 unit is at most 3 UTF-8 bytes: encode only when it could matter.
    const bytes = json.length * 3 <= MAX_BATCH_BYTES
      ? json.length
      : new TextEncoder().encode(json).length;
    if (bytes > MAX_BATCH_BYTES) {
      throw new RangeError(`A batch of ${bytes} bytes is over the limit of ${MAX_BATCH_BYTES}`);
    }
    const spec = { method: "POST", path: "/api/batch", json };
    let answer: Answer;
    try {
      answer = await this.#call(spec, options);
    } catch (error) {
      if (error instanceof RelayError && (error.status === 404 || error.status === 405)) {
        throw new BatchUnsupportedError(
          `The relay has no batch endpoint (POST /api/batch answered ${error.status})`,
          error.status,
        );
      }
      throw error;
    }
    const results = parseBatchResults(answer.data, items.length);
    if (!results) {
      throw this.#unparseable(spec, `no results array of ${items.length} items in the answer`);
    }
    return results;
  }

  /**
   * `GET /health`, no token: true when the relay answers at all (any status), false on a
   * connection error or after `timeoutMs` (default 1000). Never throws.
   */
  probe(options: ProbeOptions = {}): Promise<boolean> {
    return probeRelay(this.baseUrl, { fetch: this.#fetch, clock: this.#clock }, options);
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
    const payload = spec.json ?? (spec.body !== undefined ? JSON.stringify(spec.body) : undefined);
    if (payload !== undefined) headers["content-type"] = "application/json";
    const started = this.#now();
    const limit = spec.limit ?? this.#maxAnswerBytes;
    try {
      let response: Response;
      let text: string;
      try {
        response = await this.#fetch(`${this.baseUrl}${spec.path}`, {
          method: spec.method,
          headers,
          ...(payload !== undefined ? { body: payload } : {}),
          signal: combined,
        });
        const ok = response.status >= 200 && response.status < 300;
        // An error answer only needs its first bytes, for the message.
        const read = await readBounded(response, ok ? limit : ERROR_DETAIL_BYTES);
        if (read.oversized && ok) {
          throw oversized(
            { what, status: response.status, limit, page: spec.page === true },
            read.prefix,
          );
        }
        text = read.oversized ? read.prefix : read.text;
      } catch (error) {
        if (error instanceof OversizedAnswerError) throw error;
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
      return answerOf(response, text, { what, token, now: this.#now() });
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
