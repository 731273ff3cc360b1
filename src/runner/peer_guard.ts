/**
 * The loop guard: counts the round trips with each peer in a sliding minute: replies to a message
 * the peer wrote after this agent's last reply to it (a backlog written earlier is no loop). Past
 * the limit, replies to that peer are held (the runner keeps them, unsent and unread, until the
 * rate falls again) and a `loop_suspected` insight reports the episode once.
 *
 * Two agents that answer each other's answers would otherwise talk forever; the runner already
 * posts replies only to messages that owe one, so this is the second line of defence.
 *
 * @module
 */

/** The replies a peer may get in one minute before the guard holds the rest. */
export const DEFAULT_REPLIES_PER_MINUTE = 30;
const WINDOW_MS = 60_000;

/** What the guard says about one more reply to a peer. */
export type PeerVerdict = "send" | "hold" | "suspect";

/** Per-peer reply rates. */
export class PeerGuard {
  readonly #limit: number;
  readonly #now: () => number;
  readonly #sent = new Map<string, number[]>();
  readonly #lastReply = new Map<string, number>();
  readonly #suspected = new Set<string>();

  constructor(options: { limit?: number; now: () => number }) {
    this.#limit = options.limit ?? DEFAULT_REPLIES_PER_MINUTE;
    this.#now = options.now;
  }

  /**
   * One more reply to `peer`, for a message it wrote at `writtenAt` (epoch ms; NaN when unknown,
   * counted): `send`, `hold` (over the limit), or `suspect` (over the limit, the first time in
   * this episode: report it).
   */
  check(peer: string, writtenAt: number): PeerVerdict {
    const recent = this.#recent(peer);
    const last = this.#lastReply.get(peer);
    const roundTrip = last === undefined || !(writtenAt <= last);
    if (!roundTrip || recent.length < this.#limit) {
      if (roundTrip) recent.push(this.#now());
      this.#lastReply.set(peer, this.#now());
      this.#suspected.delete(peer);
      return "send";
    }
    if (this.#suspected.has(peer)) return "hold";
    this.#suspected.add(peer);
    return "suspect";
  }

  /** Round trips with `peer` within the last minute. */
  rate(peer: string): number {
    return this.#recent(peer).length;
  }

  #recent(peer: string): number[] {
    const since = this.#now() - WINDOW_MS;
    const kept = (this.#sent.get(peer) ?? []).filter((t) => t > since);
    this.#sent.set(peer, kept);
    return kept;
  }
}
