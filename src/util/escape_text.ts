/**
 * One line of text that is safe to show a person: every character that could break a line,
 * move a terminal's cursor, hide text or reorder it is shown as a visible escape instead.
 *
 * Escaped: C0 controls (NUL, BEL, BS, TAB, LF, VT, FF, CR, ESC...) and DEL, C1 controls (U+0080 to
 * U+009F, among them CSI and NEL), the line and paragraph separators (U+2028, U+2029), and the
 * bidi embeddings, overrides and isolates (U+202A to U+202E, U+2066 to U+2069). A line feed shows
 * as `\n`, the rest as `\u{HEX}`, so `grep` never sees a binary file and no entry can forge another.
 *
 * @module
 */

// deno-lint-ignore no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/** `text` with every unsafe character escaped (see the module doc). */
export function escapeText(text: string): string {
  return text.replace(UNSAFE, (c) => NAMED[c] ?? `\\u{${c.charCodeAt(0).toString(16)}}`);
}

/** Whether `text` holds a character {@linkcode escapeText} would escape. */
export function hasUnsafeText(text: string): boolean {
  UNSAFE.lastIndex = 0;
  const found = UNSAFE.test(text);
  UNSAFE.lastIndex = 0;
  return found;
}
