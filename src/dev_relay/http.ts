/**
 * The reference relay's request and response helpers: the error a handler throws to answer
 * with a status, JSON answers, the body size limit and the checks on body fields.
 *
 * @module
 */
import { readLimited } from "../util/mod.ts";

/** The largest request body the relay reads, in bytes. */
export const MAX_BODY = 1024 * 1024;

/** The largest `POST /api/batch` body, in bytes. */
export const MAX_BATCH_BODY = 4 * 1024 * 1024;

/** A message id in a path: a 400 unless it is a positive whole number. */
export function messageIdParam(segment: string): number {
  const text = decode(segment);
  if (!/^\d{1,15}$/.test(text) || Number(text) < 1) {
    throw new HttpError(400, `message id "${text}" is not a number`);
  }
  return Number(text);
}

/** Thrown by a handler to answer `status` with `{ error: message }`. */
export class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** A JSON answer. */
export function json(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** A 405 naming the methods allowed. */
export function notAllowed(allow: string): Response {
  return json(405, { error: `method not allowed (allowed: ${allow})` }, { allow });
}

/** `value` as a JSON object, or a 400 naming `what`. */
export function record(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new HttpError(400, `${what} must be a JSON object`);
  }
  return value as Record<string, unknown>;
}

/** How {@linkcode text} checks a field. */
export interface TextOptions {
  /** A missing field is `undefined` rather than a 400. */
  optional?: boolean;
  /** An empty (or blank) string is allowed. */
  empty?: boolean;
  /** The longest string allowed. */
  max?: number;
}

/** A string field of a body, checked; a 400 names the field and what is wrong with it. */
export function text(
  body: Record<string, unknown>,
  key: string,
  options: TextOptions = {},
): string | undefined {
  const v = body[key];
  if (v === undefined || v === null) {
    if (options.optional) return undefined;
    throw new HttpError(400, `field "${key}" is required`);
  }
  if (typeof v !== "string") throw new HttpError(400, `field "${key}" must be a string`);
  if (!options.empty && v.trim() === "") {
    throw new HttpError(400, `field "${key}" must not be empty`);
  }
  if (options.max !== undefined && v.length > options.max) {
    throw new HttpError(400, `field "${key}" is longer than ${options.max} characters`);
  }
  return v;
}

/** A required, non-empty string field of at most `max` characters. */
export function requiredText(body: Record<string, unknown>, key: string, max = 200): string {
  return text(body, key, { max }) as string;
}

/** A time field, epoch milliseconds or ISO-8601, as epoch milliseconds; absent is `undefined`. */
export function time(body: Record<string, unknown>, key: string): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (typeof v === "string" && !Number.isNaN(Date.parse(v))) return Date.parse(v);
  throw new HttpError(400, `field "${key}" must be epoch milliseconds or an ISO-8601 time`);
}

/**
 * The body's bytes, counted as they stream in: a 413 as soon as they pass `limit` (the rest is
 * cancelled unread), and at once for a `content-length` over it.
 */
export async function readBody(request: Request, limit = MAX_BODY): Promise<Uint8Array> {
  const tooLarge = () => new HttpError(413, `the body is larger than ${limit} bytes`);
  const length = Number(request.headers.get("content-length") ?? "0");
  if (length > limit) {
    await request.body?.cancel().catch(() => {});
    throw tooLarge();
  }
  const read = await readLimited(request.body, { limit });
  if (!read.complete) throw tooLarge();
  return read.bytes;
}

/**
 * The body as JSON (an empty body is `{}`): 413 past `limit` bytes (default
 * {@linkcode MAX_BODY}), read no further; 400 if not JSON.
 */
export async function readJson(request: Request, limit = MAX_BODY): Promise<unknown> {
  return parseJson(await readBody(request, limit));
}

/** Body bytes as JSON (none is `{}`), or a 400. */
export function parseJson(bytes: Uint8Array): unknown {
  const raw = new TextDecoder().decode(bytes);
  if (raw.trim() === "") return {};
  try {
    return JSON.parse(raw);
  } catch {
    throw new HttpError(400, "the body is not valid JSON");
  }
}

/** A percent-decoded path segment, or a 400. */
export function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, `path segment "${segment}" is not valid percent-encoding`);
  }
}

/** A short, quoted, one-line excerpt of a body for a trace line. */
export function snippet(body: string, max = 60): string {
  const flat = body.replace(/\s+/g, " ").trim();
  return JSON.stringify(flat.length > max ? `${flat.slice(0, max)}...` : flat);
}
