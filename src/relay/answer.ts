/**
 * A relay answer turned into data or a classified {@linkcode RelayError}: the status, the
 * JSON body, the error sentence the relay gave, `Retry-After`; and the error for an answer
 * over the byte limit. The bearer token is scrubbed from any text quoted.
 *
 * @module
 */
import { escapeText } from "../util/mod.ts";
import { firstMessageHint } from "./bounded_body.ts";
import { classifyStatus, OversizedAnswerError, RelayError, scrub } from "./errors.ts";
import { isRecord } from "./wire.ts";

/** A successful answer: its status and parsed body (`undefined` for an empty one). */
export interface Answer {
  status: number;
  data: unknown;
}

/** Keep this much of an error answer's body for its message, bytes. */
export const ERROR_DETAIL_BYTES = 16 * 1024;

/** `Retry-After` (seconds or an HTTP date) in milliseconds from `now`. */
export function retryAfterMs(header: string | null, now: number): number | undefined {
  if (header === null) return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** `text` on one line, at most `max` characters, every control character escaped. */
export function oneLine(text: string, max = 200): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return escapeText(flat.length > max ? `${flat.slice(0, max)}...` : flat);
}

/** A request path without its query (the query may name an agent; it is not secret). */
export function pathOnly(path: string): string {
  const q = path.indexOf("?");
  return q === -1 ? path : path.slice(0, q);
}

/** A byte-limit option, checked; `fallback` when unset. */
export function byteLimit(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new TypeError(`Relay client option ${name} (${value}) must be a positive whole number`);
  }
  return value;
}

/** What {@linkcode oversized} says about the call. */
export interface OversizedCall {
  /** `METHOD /path`. */
  what: string;
  status: number;
  limit: number;
  /** A message page: name its first message when the prefix holds it. */
  page: boolean;
}

/** The error for a 2xx answer over its limit, `prefix` being its first bytes. */
export function oversized(call: OversizedCall, prefix: string): OversizedAnswerError {
  const first = call.page ? firstMessageHint(prefix) : undefined;
  const named = first ? ` (first message #${first.id} from ${escapeText(first.from)})` : "";
  return new OversizedAnswerError(
    `${call.what} answered more than the limit of ${call.limit} bytes${named}; ` +
      "the rest was not read",
    { limit: call.limit, status: call.status, ...(first ? { first } : {}) },
  );
}

/** What {@linkcode answerOf} needs besides the response. */
export interface AnswerContext {
  what: string;
  token: string | undefined;
  now: number;
}

/** A 2xx answer's data, or the classified error of any other. */
export function answerOf(response: Response, text: string, context: AnswerContext): Answer {
  const { what, token } = context;
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
    // Not JSON (or cut at the detail limit): keep the text.
  }
  const kind = classifyStatus(response.status);
  const after = retryAfterMs(response.headers.get("retry-after"), context.now);
  throw new RelayError(
    `${what} failed: ${response.status} ${response.statusText}${
      detail ? `: ${scrub(detail, token)}` : ""
    }`,
    { kind, status: response.status, ...(after !== undefined ? { retryAfterMs: after } : {}) },
  );
}
