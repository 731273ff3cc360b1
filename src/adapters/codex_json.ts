/**
 * Reading the Codex app-server's JSON payloads without trusting their shape: narrowing helpers
 * and the clipping of long texts for the mirror.
 *
 * @module
 */

/** A JSON object. */
export type Json = Record<string, unknown>;

/** Whether `v` is a JSON object (not null, not an array). */
export const isObject = (v: unknown): v is Json =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** `v` when it is a string. */
export const str = (v: unknown): string | undefined => typeof v === "string" ? v : undefined;

/** `v` when it is a finite number. */
export const num = (v: unknown): number | undefined =>
  typeof v === "number" && Number.isFinite(v) ? v : undefined;

/** `text` cut to `max` characters, saying how many more there were. */
export function clip(text: string, max = 4_000): string {
  return text.length > max
    ? `${text.slice(0, max)}\n... (${text.length - max} more characters)`
    : text;
}
