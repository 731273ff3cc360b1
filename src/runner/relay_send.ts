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
import { getLogger } from "../logger.ts";
import {
  type BatchItem,
  type BatchResult,
  BatchUnsupportedError,
  classifyStatus,
  MAX_BATCH_ITEMS,
  RelayError,
  type RelayHttpClient,
} from "../relay/mod.ts";
import { errorText } from "../util/mod.ts";
import { type Outgoing, readOutgoing } from "./outgoing.ts";

const log = getLogger("runner");

/** The relay calls the transport makes. */
export type RelayCalls = Pick<
  RelayHttpClient,
  "sendMessage" | "recordInsight" | "markRead" | "setTaskStatus" | "sendReceipt" | "sendBatch"
>;

type Stamped = Pick<OutboxRecord, "kind" | "payload" | "occurredAt" | "idempotencyKey">;

/** The batch item that carries `record`; undefined when its payload cannot be sent. */
export function batchItem(record: Stamped, agentId: string): BatchItem | undefined {
  const event = readOutgoing(record);
  const stamp = { occurredAt: record.occurredAt, idempotencyKey: record.idempotencyKey };
  switch (event?.kind) {
    case "message":
      return { type: "message", body: { ...event.payload, ...stamp } };
    case "insight":
      return { type: "insight", body: { ...event.payload, ...stamp } };
    case "mark-read":
      return { type: "mark-read", messageId: event.payload.messageId, agentId };
    case "task-status":
      return {
        type: "task-status",
        taskId: event.payload.taskId,
        body: {
          status: event.payload.status,
          agentId,
          metadata: { messageId: event.payload.messageId, completedBy: "runner" },
        },
      };
    case "receipt":
      return {
        type: "receipt",
        messageId: event.payload.messageId,
        body: {
          agentId,
          state: event.payload.state,
          at: record.occurredAt,
          ...(event.payload.detail !== undefined ? { detail: event.payload.detail } : {}),
        },
      };
    case undefined:
      return undefined;
  }
}

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

/** How many items one batch call carries at most (the relay takes 1,000 and 4 MiB). */
export const BATCH_ITEMS = MAX_BATCH_ITEMS;

/**
 * The outbox transport over `relay`: a batch of records in one `POST /api/batch` call when the
 * relay has it, else one call per record (remembered for the run once the relay says 404 or
 * 405). In order either way, stopping at the first transient failure.
 */
export function relaySend(relay: RelayCalls, options: { agentId: string }): OutboxSend {
  let batches = true;
  const single = singleCalls(relay, options);
  return async (records, { signal }) => {
    if (!batches || records.length < 2) return await single(records, { signal });
    try {
      return await sendInBatches(relay, records, { agentId: options.agentId, signal });
    } catch (error) {
      if (!(error instanceof BatchUnsupportedError)) throw error;
      log.info(`${error.message}: sending one call per event from now on`);
      batches = false;
      return await single(records, { signal });
    }
  };
}

/** What one batch item's status means for its record. */
function resultOf(item: BatchItem | undefined, status: number, error?: string): SendResult {
  if (item === undefined) {
    return { ok: false, permanent: true, error: "a payload this runner cannot send" };
  }
  if ((status >= 200 && status < 300) || status === 409) return { ok: true };
  if (item.type === "receipt" && (status === 404 || status === 405)) return { ok: true };
  const permanent = classifyStatus(status) === "permanent";
  return { ok: false, permanent, error: `${item.type} answered ${status}: ${error ?? ""}`.trim() };
}

async function sendInBatches(
  relay: RelayCalls,
  records: readonly OutboxRecord[],
  options: { agentId: string; signal: AbortSignal },
): Promise<SendResult[]> {
  const results: SendResult[] = [];
  let i = 0;
  while (i < records.length) {
    // The next chunk, within the item limit. The outbox keeps a batch near 1 MiB of payload; a
    // chunk over the relay's 4 MiB (one huge record) is refused by sendBatch before anything is
    // sent, and goes one call per record instead.
    const chunk: Array<BatchItem | undefined> = [];
    const sendable: BatchItem[] = [];
    while (i + chunk.length < records.length && sendable.length < BATCH_ITEMS) {
      const item = batchItem(records[i + chunk.length]!, options.agentId);
      chunk.push(item);
      if (item) sendable.push(item);
    }
    let answers: BatchResult[];
    try {
      answers = sendable.length > 0 ? await relay.sendBatch(sendable, options) : [];
    } catch (error) {
      if (error instanceof BatchUnsupportedError) {
        if (results.length === 0) throw error;
        break; // What was sent stands; the rest goes one by one next time.
      }
      const permanent = error instanceof RelayError && error.permanent;
      if (permanent || error instanceof RangeError) {
        // Too large to batch, or refused as a whole (one bad item, most likely): single calls
        // send what can be sent and find which.
        results.push(
          ...await singleCalls(relay, options)(records.slice(i, i + chunk.length), options),
        );
        i += chunk.length;
        if (results.some((r) => !r.ok && !r.permanent)) break;
        continue;
      }
      // Transient: this chunk and the rest are retried, in order.
      results.push({ ok: false, permanent: false, error: errorText(error) });
      break;
    }
    let k = 0;
    let stop = false;
    for (const item of chunk) {
      const answer = item ? answers[k++]! : undefined;
      const result = resultOf(item, answer?.status ?? 0, answer?.error);
      results.push(result);
      if (!result.ok && !result.permanent) stop = true;
    }
    i += chunk.length;
    if (stop) break;
  }
  // Order: after a transient failure, the rest counts as not sent (the relay deduplicates what
  // it already applied when it comes again).
  const firstTransient = results.findIndex((r) => !r.ok && !r.permanent);
  if (firstTransient !== -1) {
    for (let j = firstTransient + 1; j < results.length; j++) {
      results[j] = { ok: false, permanent: false, error: "not sent: an earlier event failed" };
    }
  }
  while (results.length < records.length) {
    results.push({ ok: false, permanent: false, error: "not sent: an earlier event failed" });
  }
  return results;
}

/** One relay call per record, in order, stopping at a transient failure. */
function singleCalls(relay: RelayCalls, options: { agentId: string }): OutboxSend {
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
