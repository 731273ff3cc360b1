/**
 * What a previous run left queued in the outbox, read back at start: a queued mark-read means its
 * message was delivered, a queued reply that its message was answered. The inbox remembers both,
 * so a restart after a crash neither delivers nor answers them a second time.
 *
 * @module
 */
import type { OutboxRecord } from "../outbox/mod.ts";
import { readOutgoing } from "./outgoing.ts";

/** The ids the queued records speak for. */
export interface Recalled {
  markedRead: number[];
  answered: number[];
}

/** Reads every queued record through `list` (paged by sequence number). */
export function recallQueued(
  list: (options: { limit: number; afterSeq: number }) => OutboxRecord[],
): Recalled {
  const recalled: Recalled = { markedRead: [], answered: [] };
  let afterSeq = 0;
  for (;;) {
    const records = list({ limit: 1_000, afterSeq });
    if (records.length === 0) return recalled;
    for (const record of records) {
      afterSeq = record.seq;
      const event = readOutgoing(record);
      if (event?.kind === "mark-read") recalled.markedRead.push(event.payload.messageId);
      else if (
        event?.kind === "message" && event.payload.kind === "chat" &&
        event.payload.replyTo !== undefined
      ) {
        recalled.answered.push(event.payload.replyTo);
      }
    }
  }
}
