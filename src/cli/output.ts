/**
 * How commands write to stdout and stderr: whole writes (a short `writeSync` is continued), and
 * a closed stream is ignored rather than crashing the command.
 *
 * @module
 */

/** Something that takes bytes synchronously, such as `Deno.stdout`. */
export interface SyncWriter {
  writeSync(p: Uint8Array): number;
}

/** Writes text to `stream` whole; with `newline`, each call is one line. */
export function writer(
  stream: SyncWriter,
  options: { newline?: boolean } = {},
): (text: string) => void {
  const encoder = new TextEncoder();
  return (text) => {
    const bytes = encoder.encode(options.newline ? `${text}\n` : text);
    let written = 0;
    try {
      while (written < bytes.length) written += stream.writeSync(bytes.subarray(written));
    } catch {
      // The stream is gone (a closed pipe or terminal): nothing else to do.
    }
  };
}

/** Writes lines (`writer` with `newline`). */
export function lineWriter(stream: SyncWriter): (line: string) => void {
  return writer(stream, { newline: true });
}
