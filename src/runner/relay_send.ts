/**
 * The outbox's transport: each stored record, read back as its {@linkcode Outgoing} event, goes
 * to the relay through the one call that sends it, in order.
 *
 * A 409 means "delivered, refused on purpose" and counts as delivered; so does a 404 or 405 to a
 * receipt (a relay that has no receipts endpoint). A transient failure stops
 * the batch there (nothing after it goes first); a permanent one poisons that record only.
 *
 * @module
 */
import type { OutboxRecord, OutboxSend, SendResult } from "../outbox/mod.ts";
import { RelayError, type RelayHttpClient } from "../relay/mod.ts";
import { errorText } from "../util/mod.ts";
import { type Outgoing, readOutgoing } from "./outgoing.ts";

/** The relay calls the transport makes. */
export type RelayCalls = Pick<
  RelayHttpClient,
  "sendMessage" | "recordInsight" | "markRead" | "setTaskStatus" | "sendReceipt"
>;

/** Sends one event; throws what the relay client throws. */
export async function sendOutgoing(
  relay: RelayCalls,
  record: Pick<OutboxRecord, "kind" | "payload" | "occurredAt" | "idempotencyKey">,
  options: { agentId: string; signal: AbortSignal },
): Promise<void> {
  const event: Outgoing | undefined = readOutgoing(record);
  const { agentId, signal } = options;
  const stamp = { occurredAt: record.occurredAt, idempotencyKey: record.idempotencyKey };
  switch (event?.kind) {
    case "message":
      await relay.sendMessage({ ...event.payload, ...stamp }, { signal });
      return;
    case "insight":
      await relay.recordInsight({ ...event.payload, ...stamp }, { signal });
      return;
    case "mark-read":
      await relay.markRead(event.payload.messageId, agentId, { signal });
      return;
    case "task-status":
      await relay.setTaskStatus(event.payload.taskId, {
        status: event.payload.status,
        agentId,
        metadata: { messageId: event.payload.messageId, completedBy: "runner" },
      }, { signal });
      return;
    case "receipt":
      try {
        await relay.sendReceipt(event.payload.messageId, {
          agentId,
          state: event.payload.state,
          at: record.occurredAt,
          ...(event.payload.detail !== undefined ? { detail: event.payload.detail } : {}),
        }, { signal });
      } catch (error) {
        // A relay without receipts: nothing to tell it, and nothing wrong with the event.
        if (error instanceof RelayError && (error.status === 404 || error.status === 405)) return;
        throw error;
      }
      return;
    case undefined:
      throw new RelayError(
        `Outbox record of kind ${
          JSON.stringify(record.kind)
        } has a payload this runner cannot send`,
        { kind: "permanent" },
      );
  }
}

/** The outbox transport over `relay`: one call per record, in order, stopping at a transient failure. */
export function relaySend(relay: RelayCalls, options: { agentId: string }): OutboxSend {
  return async (records, { signal }) => {
    const results: SendResult[] = [];
    for (const record of records) {
      try {
        await sendOutgoing(relay, record, { agentId: options.agentId, signal });
        results.push({ ok: true });
      } catch (error) {
        if (error instanceof RelayError && error.kind === "conflict") {
          results.push({ ok: true }); // Refused on purpose: delivered, never retried.
          continue;
        }
        const permanent = error instanceof RelayError && error.permanent;
        results.push({ ok: false, permanent, error: errorText(error) });
        if (!permanent) break; // Order: nothing after a transient failure goes first.
      }
    }
    while (results.length < records.length) {
      results.push({ ok: false, permanent: false, error: "not sent: an earlier event failed" });
    }
    return results;
  };
}
