/**
 * Splits a byte stream into text lines (LF or CRLF), for the providers' stdout and stderr.
 *
 * @module
 */

/** Yields each line of `stream` without its line ending; a last unterminated line is yielded too. */
export async function* readLines(
  stream: ReadableStream<Uint8Array>,
  options: { maxLineBytes?: number } = {},
): AsyncGenerator<string> {
  const max = options.maxLineBytes ?? 16 * 1024 * 1024;
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of stream) {
    buffer += decoder.decode(chunk, { stream: true });
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
  if (buffer.length > 0) yield buffer;
}
