/**
 * Splits a byte stream into text lines (LF or CRLF), for the providers' stdout and stderr.
 *
 * @module
 */

/** Options of {@linkcode readLines}. */
export interface ReadLinesOptions {
  /** A line longer than this without a newline is handed over in pieces. Default 16 MiB. */
  maxLineBytes?: number;
  /** Aborting cancels the stream: the lines read so far are yielded, then the generator ends. */
  signal?: AbortSignal;
  /**
   * Receives a last line that ended without a newline (the writer died mid-line, or the stream
   * was cancelled). Without it, that line is yielded like the others.
   */
  onPartial?: (text: string) => void;
}

/**
 * Yields each line of `stream` without its line ending; a last unterminated line goes to
 * `onPartial` when given, else it is yielded too.
 */
export async function* readLines(
  stream: ReadableStream<Uint8Array>,
  options: ReadLinesOptions = {},
): AsyncGenerator<string> {
  const max = options.maxLineBytes ?? 16 * 1024 * 1024;
  const decoder = new TextDecoder();
  const reader = stream.getReader();
  const cancel = () => void reader.cancel().catch(() => {});
  options.signal?.addEventListener("abort", cancel, { once: true });
  if (options.signal?.aborted) cancel();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = buffer.indexOf("\n")) !== -1) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        yield line.endsWith("\r") ? line.slice(0, -1) : line;
      }
      if (buffer.length > max) {
        // A runaway line without a newline: hand it over in pieces rather than grow forever.
        yield buffer;
        buffer = "";
      }
    }
    buffer += decoder.decode();
    if (buffer.length > 0) {
      if (options.onPartial) options.onPartial(buffer);
      else yield buffer;
    }
  } finally {
    options.signal?.removeEventListener("abort", cancel);
    reader.releaseLock();
  }
}
