/**
 * Reading a byte stream through a limit: chunk by chunk, cancelled as soon as more than `limit`
 * bytes arrived, so a hostile peer's 400 MB body costs at most the limit plus one chunk. The
 * relay client reads answers this way, the reference relay request bodies.
 *
 * @module
 */

/** What {@linkcode readLimited} read. */
export interface LimitedRead {
  /** Every byte (complete), or the first `keep` bytes (over the limit). */
  bytes: Uint8Array;
  /** False when the stream passed the limit (or `stopAfter`) and was cancelled. */
  complete: boolean;
}

/** Options of {@linkcode readLimited}. */
export interface ReadLimitedOptions {
  /** The most bytes read whole. */
  limit: number;
  /** Over the limit, keep this many leading bytes. Default 0. */
  keep?: number;
  /** Give up (as over the limit) once this many bytes are in: a declared length over the limit. */
  stopAfter?: number;
}

/** Reads `stream` whole, unless it passes the limit; then cancels it and keeps its first bytes. */
export async function readLimited(
  stream: ReadableStream<Uint8Array> | null,
  options: ReadLimitedOptions,
): Promise<LimitedRead> {
  if (!stream) return { bytes: new Uint8Array(), complete: true };
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      total += value.length;
      if (
        total > options.limit || (options.stopAfter !== undefined && total >= options.stopAfter)
      ) {
        const bytes = concat(chunks, total, options.keep ?? 0);
        chunks.length = 0;
        await reader.cancel().catch(() => {});
        return { bytes, complete: false };
      }
    }
  } finally {
    reader.releaseLock();
  }
  return { bytes: concat(chunks, total, total), complete: true };
}

function concat(chunks: Uint8Array[], total: number, max: number): Uint8Array {
  const out = new Uint8Array(Math.min(total, max));
  let at = 0;
  for (const chunk of chunks) {
    if (at >= out.length) break;
    const part = chunk.subarray(0, out.length - at);
    out.set(part, at);
    at += part.length;
  }
  return out;
}
