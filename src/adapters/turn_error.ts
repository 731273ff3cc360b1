/**
 * The `error` of a failed turn's `turn-end`: one sentence a sender can read in a failure reply.
 * Providers write paragraphs ("API Error: 500 ... This is a server-side issue, usually temporary -
 * try again in a moment. If it persists, ..."); the first sentence says what happened.
 *
 * @module
 */

/** The longest turn error kept, in characters (a longer one is cut with an ellipsis). */
export const MAX_TURN_ERROR = 300;

/**
 * `text` as one sentence on one line: whitespace runs (newlines included) become one space, and
 * the text is cut after its first sentence (a `.`, `!` or `?` followed by a space and a capital
 * letter) and at {@linkcode MAX_TURN_ERROR} characters. `fallback` when nothing is left.
 */
export function oneSentence(text: string | undefined, fallback = "The turn failed"): string {
  const flat = (text ?? "").replace(/\s+/g, " ").trim();
  if (flat === "") return fallback;
  const end = /[.!?](?= \p{Lu})/u.exec(flat);
  const sentence = end ? flat.slice(0, end.index + 1) : flat;
  return sentence.length <= MAX_TURN_ERROR
    ? sentence
    : `${sentence.slice(0, MAX_TURN_ERROR - 1).trimEnd()}\u2026`;
}
