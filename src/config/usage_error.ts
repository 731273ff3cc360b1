/**
 * The error of a bad command line or environment: the CLI prints its message on one line and
 * exits 2.
 *
 * @module
 */

/**
 * A usage error: the CLI prints its message on one line and exits 2. A message quotes the
 * offending value, which may hold anything, so control characters are escaped (`\n`, `\u0000`)
 * and the message is cut at 500 characters: it always stays one readable line.
 */
export class UsageError extends Error {
  override name = "UsageError";

  constructor(message: string) {
    // deno-lint-ignore no-control-regex
    let line = message.replace(/[\u0000-\u001f\u007f]/g, (c) => JSON.stringify(c).slice(1, -1));
    if (line.length > 500) line = `${line.slice(0, 499)}\u2026`;
    super(line);
  }
}
