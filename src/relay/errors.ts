/**
 * The relay client's error type and the classification of failures
 * (docs/protocol.md).
 *
 * | what happened | kind | what a caller does |
 * |---|---|---|
 * | 409 | `conflict` | the relay refused on purpose (feature off): treat as delivered |
 * | 401, 403 | `auth` | renew the token, then retry |
 * | 408, 429, 5xx, timeouts, network errors, unparseable 2xx bodies | `transient` | retry later |
 * | any other 4xx | `permanent` | the request is wrong: poison it |
 *
 * A message never contains the bearer token.
 *
 * @module
 */

/** How a relay failure must be handled. */
export type RelayErrorKind = "conflict" | "auth" | "transient" | "permanent";

/** Options of {@linkcode RelayError}. */
export interface RelayErrorOptions {
  kind: RelayErrorKind;
  /** The HTTP status, when the relay answered. */
  status?: number;
  /** `Retry-After`, in milliseconds, when the relay sent one. */
  retryAfterMs?: number;
  cause?: unknown;
}

/** A failed relay call, classified. */
export class RelayError extends Error {
  override name = "RelayError";
  /** How the failure must be handled. */
  readonly kind: RelayErrorKind;
  /** The HTTP status, when the relay answered. */
  readonly status?: number;
  /** `Retry-After`, in milliseconds, when the relay sent one. */
  readonly retryAfterMs?: number;

  constructor(message: string, options: RelayErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.kind = options.kind;
    if (options.status !== undefined) this.status = options.status;
    if (options.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
  }

  /** True only for `permanent`: the request itself is wrong and must not be retried. */
  get permanent(): boolean {
    return this.kind === "permanent";
  }
}

/** The kind of failure an HTTP status (not 2xx) means. */
export function classifyStatus(status: number): RelayErrorKind {
  if (status === 409) return "conflict";
  if (status === 401 || status === 403) return "auth";
  if (status === 408 || status === 429 || status >= 500) return "transient";
  if (status >= 400) return "permanent";
  // A 1xx or 3xx where a JSON answer was expected: odd, but the request itself may be fine.
  return "transient";
}

/** The kind of any thrown value: a {@linkcode RelayError}'s own kind, anything else transient. */
export function relayErrorKind(error: unknown): RelayErrorKind {
  return error instanceof RelayError ? error.kind : "transient";
}

/** Whether `error` means "refused on purpose, treat as delivered" (a 409). */
export function isConflict(error: unknown): boolean {
  return relayErrorKind(error) === "conflict";
}

/** Removes every occurrence of `secret` (when set) from `text`. */
export function scrub(text: string, secret: string | undefined): string {
  if (!secret) return text;
  return text.split(secret).join("[redacted]");
}

/** What a message page over the byte limit still told about its first message. */
export interface OversizedFirst {
  id: number;
  from: string;
}

/** Options of {@linkcode OversizedAnswerError}. */
export interface OversizedAnswerOptions {
  /** The byte limit the answer passed. */
  limit: number;
  /** The HTTP status of the answer. */
  status?: number;
  /** For a message page: the first message's id and sender, when its first bytes held them. */
  first?: OversizedFirst;
}

/**
 * A relay answer larger than the client's byte limit: its body was cancelled unread past the
 * limit. `transient`: a page of many messages fits with a smaller `limit`; a single message too
 * large to read is named by `first`, so the caller can mark it read and answer it.
 */
export class OversizedAnswerError extends RelayError {
  override name = "OversizedAnswerError";
  /** The byte limit the answer passed. */
  readonly limit: number;
  /** For a message page: the first message's id and sender, when they could be read. */
  readonly first?: OversizedFirst;

  constructor(message: string, options: OversizedAnswerOptions) {
    super(message, {
      kind: "transient",
      ...(options.status !== undefined ? { status: options.status } : {}),
    });
    this.limit = options.limit;
    if (options.first) this.first = { ...options.first };
  }
}

/**
 * `POST /api/batch` answered 404 or 405: the relay has no batch endpoint. Send one call per
 * event instead, and remember that for the run.
 */
export class BatchUnsupportedError extends RelayError {
  override name = "BatchUnsupportedError";

  constructor(message: string, status: number) {
    super(message, { kind: "permanent", status });
  }
}
