/**
 * One way to turn a caught value into text for a log line or an error message.
 *
 * @module
 */

/** The message of an `Error`, or the value as a string for anything else that was thrown. */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
