/**
 * Reading a relay answer through a byte limit: the body is read chunk by chunk and cancelled
 * as soon as it passes the limit, so a hostile relay's 400 MB answer costs at most the limit
 * plus one chunk. For a message page that passed the limit, {@linkcode firstMessageHint} reads
 * the first message's `id` and `from` out of the first bytes (docs/protocol.md, "Byte limits").
 *
 * @module
 */
import { readLimited } from "../util/mod.ts";
import type { OversizedFirst } from "./errors.ts";

/** How many leading bytes of an oversized answer are kept for {@linkcode firstMessageHint}. */
export const HINT_PREFIX_BYTES = 64 * 1024;

/** What {@linkcode readBounded} read. */
export type BoundedRead =
  | { oversized: false; text: string }
  | {
    oversized: true;
    /** The first bytes of the answer (at most `prefixBytes`), decoded. */
    prefix: string;
  };

/** Options of {@linkcode readBounded}. */
export interface ReadBoundedOptions {
  /** Keep this many leading bytes of an oversized answer. Default {@linkcode HINT_PREFIX_BYTES}. */
  prefixBytes?: number;
}

/**
 * Reads `response`'s body as text unless it passes `limit` bytes; then cancels the rest and
 * returns its first bytes. A `content-length` over the limit stops the read once the prefix is
 * in, without reading up to the limit.
 */
export async function readBounded(
  response: Response,
  limit: number,
  options: ReadBoundedOptions = {},
): Promise<BoundedRead> {
  const prefixBytes = options.prefixBytes ?? HINT_PREFIX_BYTES;
  const declared = Number(response.headers.get("content-length") ?? "");
  const declaredOver = Number.isFinite(declared) && declared > limit;
  const read = await readLimited(response.body, {
    limit,
    keep: prefixBytes,
    ...(declaredOver ? { stopAfter: prefixBytes } : {}),
  });
  const text = new TextDecoder().decode(read.bytes);
  return read.complete ? { oversized: false, text } : { oversized: true, prefix: text };
}

/** Where a JSON string literal starting at `start` (a `"`) ends; -1 when the text ends first. */
function stringEnd(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    const c = text[i];
    if (c === "\\") i++;
    else if (c === '"') return i;
  }
  return -1;
}

const LITERAL = /-?[0-9][0-9.eE+-]*|true|false|null/y;

/**
 * The first message's `id` and `from` in the first bytes of a message page
 * (`{"messages":[{"id":N,"from":"..."...`), when both are there: a small JSON scanner that
 * follows nesting, so an `id` inside a payload is not taken for the message's. `undefined` when
 * either is missing, cut off or not well formed.
 */
export function firstMessageHint(text: string): OversizedFirst | undefined {
  const stack: string[] = [];
  let key: string | undefined;
  let keyDepth = -1;
  let expectKey = false;
  let arrayDepth = -1;
  let objectDepth = -1;
  let id: number | undefined;
  let from: string | undefined;
  let i = 0;
  const atMessage = () =>
    objectDepth > 0 && stack.length === objectDepth && keyDepth === objectDepth;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === " " || c === "\n" || c === "\r" || c === "\t") {
      i++;
    } else if (c === ":") {
      expectKey = false;
      i++;
    } else if (c === ",") {
      expectKey = stack[stack.length - 1] === "{";
      i++;
    } else if (c === '"') {
      const end = stringEnd(text, i);
      if (end < 0) break;
      let value: string;
      try {
        value = JSON.parse(text.slice(i, end + 1));
      } catch {
        return undefined;
      }
      if (expectKey) {
        key = value;
        keyDepth = stack.length;
        expectKey = false;
      } else if (atMessage() && key === "from") {
        from = value;
      }
      i = end + 1;
    } else if (c === "{") {
      if (objectDepth < 0 && arrayDepth > 0 && stack.length === arrayDepth) {
        objectDepth = stack.length + 1;
      }
      stack.push("{");
      expectKey = true;
      i++;
    } else if (c === "[") {
      if (arrayDepth < 0 && stack.length === 1 && keyDepth === 1 && key === "messages") {
        arrayDepth = stack.length + 1;
      }
      stack.push("[");
      expectKey = false;
      i++;
    } else if (c === "}" || c === "]") {
      if (c === "}" && stack.length === objectDepth) break;
      stack.pop();
      keyDepth = -1;
      i++;
    } else {
      LITERAL.lastIndex = i;
      const match = LITERAL.exec(text);
      if (!match) return undefined;
      const end = i + match[0].length;
      // A literal that runs to the end of the text may be cut short.
      if (end >= text.length) break;
      if (atMessage() && key === "id") id = Number(match[0]);
      i = end;
    }
    if (id !== undefined && from !== undefined) break;
  }
  if (id === undefined || !Number.isSafeInteger(id) || id <= 0) return undefined;
  if (from === undefined || from === "") return undefined;
  return { id, from };
}
