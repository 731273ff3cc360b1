/**
 * Everything the runner tells the relay, as one discriminated union of outbox records: how each
 * is built, how it is read back from the outbox (after a crash, or to send it), and which relay
 * call sends it.
 *
 * A record's payload is stored as JSON; {@linkcode readOutgoing} checks its shape, so nothing
 * downstream casts. A stored record whose shape is wrong (written by a future or broken version)
 * reads as `undefined` and is poisoned by the transport, never guessed at.
 *
 * @module
 */
import type { OutboxRecord } from "../outbox/mod.ts";
import type { ReceiptState } from "../relay/mod.ts";
import type { InsightInput, SendMessageInput, TaskStatus } from "../types.ts";

/** A message to the relay: a reply (`chat` with `replyTo`) or a mirror entry (`session`). */
export interface OutgoingMessage {
  kind: "message";
  payload: SendMessageInput;
}

/** An insight; the outbox stamps `occurredAt` and the idempotency key. */
export interface OutgoingInsight {
  kind: "insight";
  payload: Omit<InsightInput, "occurredAt" | "idempotencyKey">;
}

/** A relay message marked read by this agent. */
export interface OutgoingMarkRead {
  kind: "mark-read";
  payload: { messageId: number };
}

/** A task's status, reported for the message that carried the task. */
export interface OutgoingTaskStatus {
  kind: "task-status";
  payload: { taskId: string; status: TaskStatus; messageId: number };
}

/** A message's progress through this agent: received, handed over, answered or failed. */
export interface OutgoingReceipt {
  kind: "receipt";
  payload: { messageId: number; state: ReceiptState; detail?: string };
}

/** One event the runner queues for the relay. */
export type Outgoing =
  | OutgoingMessage
  | OutgoingInsight
  | OutgoingMarkRead
  | OutgoingTaskStatus
  | OutgoingReceipt;

/** The record kinds, for the outbox. */
export type OutgoingKind = Outgoing["kind"];

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json =>
  typeof value === "object" && value !== null && !Array.isArray(value);
const isId = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value > 0;
const isText = (value: unknown): value is string => typeof value === "string";
const TASK_STATUSES: readonly string[] = ["in_progress", "done", "failed"];
const RECEIPT_STATES: readonly string[] = ["received", "handed", "answered", "failed"];

function readMessage(p: Json): SendMessageInput | undefined {
  if (!isText(p["from"]) || !isText(p["to"]) || !isText(p["kind"]) || !isText(p["body"])) {
    return undefined;
  }
  if (p["replyTo"] !== undefined && !isId(p["replyTo"])) return undefined;
  return {
    from: p["from"],
    to: p["to"],
    kind: p["kind"],
    body: p["body"],
    ...(p["replyTo"] !== undefined ? { replyTo: p["replyTo"] } : {}),
    ...(p["payload"] !== undefined ? { payload: p["payload"] } : {}),
  };
}

function readInsight(p: Json): OutgoingInsight["payload"] | undefined {
  const { sessionId, project, agentId, signal, source } = p;
  if (![sessionId, project, agentId, signal, source].every(isText)) return undefined;
  return {
    sessionId: sessionId as string,
    project: project as string,
    agentId: agentId as string,
    signal: signal as string,
    value: p["value"],
    ...(p["outcome"] !== undefined ? { outcome: p["outcome"] } : {}),
    source: source as string,
  };
}

/** Reads a stored outbox record back as the event it was queued as; `undefined` if malformed. */
export function readOutgoing(record: Pick<OutboxRecord, "kind" | "payload">): Outgoing | undefined {
  const p = record.payload;
  if (!isObject(p)) return undefined;
  switch (record.kind) {
    case "message": {
      const payload = readMessage(p);
      return payload && { kind: "message", payload };
    }
    case "insight": {
      const payload = readInsight(p);
      return payload && { kind: "insight", payload };
    }
    case "mark-read":
      return isId(p["messageId"])
        ? { kind: "mark-read", payload: { messageId: p["messageId"] } }
        : undefined;
    case "task-status": {
      const { taskId, status, messageId } = p;
      if (
        !isText(taskId) || !isText(status) || !TASK_STATUSES.includes(status) || !isId(messageId)
      ) {
        return undefined;
      }
      return { kind: "task-status", payload: { taskId, status: status as TaskStatus, messageId } };
    }
    case "receipt": {
      const { messageId, state, detail } = p;
      if (!isId(messageId) || !isText(state) || !RECEIPT_STATES.includes(state)) return undefined;
      if (detail !== undefined && !isText(detail)) return undefined;
      return {
        kind: "receipt",
        payload: {
          messageId,
          state: state as ReceiptState,
          ...(detail !== undefined ? { detail } : {}),
        },
      };
    }
    default:
      return undefined;
  }
}

/** What the runner stamps on every mirror entry. */
export interface MirrorOptions {
  /** The agent: the mirror is addressed to it, and it is the sender unless `from` says. */
  agentId: string;
  provider: string;
  /** The sender shown (a relay prompt's sender); default the agent. */
  from?: string;
  /** More fields of the `session` payload (`origin`, `messageId`, `tool`...). */
  extra?: Record<string, unknown>;
}

/** A `session` mirror entry: display-only traffic that shows what the agent is doing. */
export function mirrorEntry(type: string, body: string, options: MirrorOptions): OutgoingMessage {
  return {
    kind: "message",
    payload: {
      from: options.from ?? options.agentId,
      to: options.agentId,
      kind: "session",
      body,
      payload: { session: { type, provider: options.provider, ...options.extra } },
    },
  };
}

/** The agent's answer to one relay message. */
export function replyTo(
  message: { id: number; from: string },
  body: string,
  options: { agentId: string; provider: string },
): OutgoingMessage {
  return {
    kind: "message",
    payload: {
      from: options.agentId,
      to: message.from,
      kind: "chat",
      body,
      replyTo: message.id,
      payload: { session: { type: "response", provider: options.provider } },
    },
  };
}

/**
 * The answer to a message whose turn failed for good: a `chat` reply whose payload says
 * `{status: "failed", error}`, and whose body a person can read.
 */
export function failureReply(
  message: { id: number; from: string },
  error: string,
  options: { agentId: string; provider: string },
): OutgoingMessage {
  const sentence = oneSentence(error);
  return {
    kind: "message",
    payload: {
      from: options.agentId,
      to: message.from,
      kind: "chat",
      body: `${options.agentId} could not answer message ${message.id}: ${sentence}`,
      replyTo: message.id,
      payload: { status: "failed", error: sentence },
    },
  };
}

/** One line, at most 300 characters, ending in a full stop. */
function oneSentence(text: string): string {
  const flat = text.replace(/\s+/g, " ").trim() || "the turn failed";
  const clipped = flat.length > 300 ? `${flat.slice(0, 297)}...` : flat;
  const first = clipped[0]!.toUpperCase() + clipped.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}

/** A receipt: `messageId` reached `state` in this agent. */
export function receipt(messageId: number, state: ReceiptState, detail?: string): OutgoingReceipt {
  return {
    kind: "receipt",
    payload: { messageId, state, ...(detail !== undefined ? { detail } : {}) },
  };
}

/** A message marked read. */
export function markRead(messageId: number): OutgoingMarkRead {
  return { kind: "mark-read", payload: { messageId } };
}

/** A task's status change. */
export function taskStatus(
  message: { id: number; taskId: string },
  status: TaskStatus,
): OutgoingTaskStatus {
  return {
    kind: "task-status",
    payload: { taskId: message.taskId, status, messageId: message.id },
  };
}
