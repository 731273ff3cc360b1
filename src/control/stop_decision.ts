/**
 * The Stop hook's decision (docs/control-server.md, "The stop decision"): a pure function of
 * the local reply-obligation snapshot, the relay messages delivered in the current turn and the
 * payload's `stop_hook_active`. It never reaches the relay.
 *
 * Messages delivered in this turn are answered by the turn's final response (posted with
 * `replyTo`), so they never block. Any other obligation in the snapshot (a message that arrived
 * while the agent was busy, or one owed from before a restart) blocks the stop while
 * `stop_hook_active` is false: the answer is `{"decision":"block","reason":...}`, the reason
 * quoting each owed message (sender, id, text), and the agent answers them in the same session.
 * Once Claude is already continuing because of a block (`stop_hook_active` true) the answer is
 * `{}`, so a stop can never loop.
 *
 * @module
 */
import type { ReplyObligation } from "../types.ts";

/** What the Stop hook prints: `{}` lets the turn end. */
export type StopAnswer = Record<string, never> | { decision: "block"; reason: string };

/** Options of {@linkcode decideStop}. */
export interface StopDecisionOptions {
  /** Ids of the relay messages delivered to the provider in the current turn. */
  deliveredThisTurn: Iterable<number>;
  /** The Stop payload's `stop_hook_active`: Claude is already continuing because of a block. */
  stopHookActive: boolean;
}

/** The result of {@linkcode decideStop}. */
export interface StopDecision {
  /** Whether the stop is blocked (the turn goes on). */
  blocked: boolean;
  /** The JSON to print on the hook's stdout. */
  answer: StopAnswer;
  /** The obligations this turn does not answer, oldest first (they block unless stopHookActive). */
  outstanding: ReplyObligation[];
}

/** At most this many characters of each owed message are quoted. */
export const MAX_QUOTED_CHARS = 2_000;
/** At most this many owed messages are quoted one by one; the rest are counted. */
export const MAX_QUOTED_MESSAGES = 20;

function quote(text: string): string {
  const clipped = text.length > MAX_QUOTED_CHARS
    ? `${text.slice(0, MAX_QUOTED_CHARS)}... (${text.length - MAX_QUOTED_CHARS} more characters)`
    : text;
  return JSON.stringify(clipped);
}

/** The block reason quoting each owed message: sender, id and text. */
export function stopReason(owed: readonly ReplyObligation[]): string {
  const one = owed.length === 1;
  const lines = [
    `You still owe a reply to ${
      one ? "this relay message" : `these ${owed.length} relay messages`
    }` +
    `. Answer ${one ? "it" : "them"} now, in this session; your final response will be sent to ` +
    `${one ? "its sender" : "their senders"}.`,
  ];
  for (const o of owed.slice(0, MAX_QUOTED_MESSAGES)) {
    const text = o.body === undefined ? "(text not available locally)" : quote(o.body);
    lines.push(`- message ${o.messageId} from ${o.from}: ${text}`);
  }
  if (owed.length > MAX_QUOTED_MESSAGES) {
    lines.push(`- and ${owed.length - MAX_QUOTED_MESSAGES} more messages not quoted here`);
  }
  return lines.join("\n");
}

/** Decides the Stop hook's answer from the local snapshot. Pure and synchronous. */
export function decideStop(
  obligations: readonly ReplyObligation[],
  options: StopDecisionOptions,
): StopDecision {
  const delivered = new Set(options.deliveredThisTurn);
  const seen = new Set<number>();
  const outstanding: ReplyObligation[] = [];
  for (const o of obligations) {
    if (delivered.has(o.messageId) || seen.has(o.messageId)) continue;
    seen.add(o.messageId);
    outstanding.push(o);
  }
  outstanding.sort((a, b) => a.messageId - b.messageId);
  if (outstanding.length === 0 || options.stopHookActive) {
    return { blocked: false, answer: {}, outstanding };
  }
  return {
    blocked: true,
    answer: { decision: "block", reason: stopReason(outstanding) },
    outstanding,
  };
}
