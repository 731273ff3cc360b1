/**
 * The HTTP plumbing every control endpoint shares: {@linkcode HttpError} (an answer thrown from
 * anywhere in a route), JSON answers, and bodies read within a byte limit.
 *
 * The request rules (docs/control-server.md): a body over the limit is refused as soon as it is
 * known to be over (413), never buffered whole; a body that is cut off, not UTF-8, not JSON or
 * not a JSON object answers 400; so does a field of the wrong type. A body that has not arrived
 * in full within the read deadline answers 408, so a client that sends half a body and stalls
 * holds its request for at most that long.
 *
 * @module
 */
import { type Clock, errorText } from "../util/mod.ts";
import type { HookPayload } from "./contract.ts";

/** An answer other than 200: thrown by a route, turned into `{error}` by the handler. */
export class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly headers?: HeadersInit) {
    super(message);
  }
}

const JSON_HEADERS = { "content-type": "application/json" };

/** A JSON answer. */
export function json(body: unknown, status = 200, headers?: HeadersInit): Response {
  const h = headers
    ? { ...JSON_HEADERS, ...Object.fromEntries(new Headers(headers)) }
    : JSON_HEADERS;
  return new Response(JSON.stringify(body), { status, headers: h });
}

/** The `{error}` answer for an {@linkcode HttpError}. */
export function errorResponse(error: HttpError): Response {
  return json({ error: error.message }, error.status, error.headers);
}

/** Whether `value` is a JSON object (not null, not an array). */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const decoder = new TextDecoder("utf-8", { fatal: true });

/** How much of a body is read, and for how long. */
export interface BodyLimits {
  /** The largest body accepted (413 above). */
  maxBytes: number;
  /** How long the whole body may take to arrive (408 after). */
  timeoutMs: number;
  /** The deadline's timer. */
  clock: Clock;
}

/**
 * Reads a body within `limits`: 413 as soon as it is past `maxBytes`, 408 when it has not
 * arrived in full within `timeoutMs`. The read is then abandoned and the request freed; the
 * connection itself stays open until the client closes it (Deno.serve 2.9.6 offers no way to
 * close it: docs/control-server.md, "Slow and idle connections").
 */
export async function readText(req: Request, limits: BodyLimits): Promise<string> {
  let timer: unknown;
  const deadline = new Promise<never>((_, reject) => {
    timer = limits.clock.setTimeout(() => {
      reject(
        new HttpError(408, `The body did not arrive within ${limits.timeoutMs} ms`),
      );
    }, limits.timeoutMs);
  });
  const reading = readWithin(req, limits.maxBytes);
  try {
    return await Promise.race([reading, deadline]);
  } finally {
    limits.clock.clearTimeout(timer);
    // After a 408 the read may still settle (or fail when the connection goes): never unhandled.
    reading.catch(() => {});
  }
}

/** {@linkcode readText} without the deadline. */
async function readWithin(req: Request, limit: number): Promise<string> {
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) {
    throw new HttpError(413, `The body is ${declared} bytes; the limit is ${limit} bytes`);
  }
  if (req.body === null) return "";
  if (declared !== null && /^\d+$/.test(declared)) {
    // The HTTP layer delivers exactly the declared length, already checked against the limit:
    // read it in one go (the fast path every hook takes: curl always declares its length).
    let bytes: Uint8Array;
    try {
      bytes = await req.bytes();
    } catch (error) {
      throw new HttpError(400, `The body could not be read: ${errorText(error)}`);
    }
    if (bytes.byteLength > limit) {
      throw new HttpError(413, `The body is over the limit of ${limit} bytes`);
    }
    return decodeUtf8(bytes);
  }
  return decodeUtf8(await readChunked(req.body, limit));
}

/** Reads a body of no declared length, counting while reading; 413 as soon as it is past. */
async function readChunked(body: ReadableStream<Uint8Array>, limit: number): Promise<Uint8Array> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    let chunk: ReadableStreamReadResult<Uint8Array>;
    try {
      chunk = await reader.read();
    } catch (error) {
      // The client went away mid-body, or sent a body the HTTP layer could not decode: the
      // request is what failed, not the runner (400, never 500).
      throw new HttpError(400, `The body could not be read: ${errorText(error)}`);
    }
    const { done, value } = chunk;
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      throw new HttpError(413, `The body is over the limit of ${limit} bytes`);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  return bytes;
}

function decodeUtf8(bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw new HttpError(400, "The body is not valid UTF-8");
  }
}

/** Reads a JSON object body within `limits`: the raw text and the parsed object. */
export async function readObject(
  req: Request,
  limits: BodyLimits,
): Promise<{ raw: string; value: HookPayload }> {
  const raw = await readText(req, limits);
  if (raw.trim() === "") throw new HttpError(400, "The body is empty; expected a JSON object");
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (error) {
    throw new HttpError(400, `The body is not valid JSON: ${errorText(error)}`);
  }
  if (!isObject(value)) {
    throw new HttpError(
      400,
      `The body is ${Array.isArray(value) ? "an array" : typeof value}, not a JSON object`,
    );
  }
  return { raw, value };
}

/**
 * Throws 400 for the first of `fields` that is present in `body` (not null) but not of the
 * type given for it.
 */
export function optionalTypes(
  body: Record<string, unknown>,
  fields: Record<string, "string" | "boolean">,
): void {
  for (const field in fields) {
    const type = fields[field]!;
    const v = body[field];
    if (v !== undefined && v !== null && typeof v !== type) {
      throw new HttpError(
        400,
        `Field "${field}" is ${Array.isArray(v) ? "an array" : typeof v}, not a ${type}`,
      );
    }
  }
}
