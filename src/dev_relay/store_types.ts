/**
 * The shapes the reference relay stores and reports: stored records, the whole state, and
 * what a write takes.
 *
 * @module
 */
import type { InsightInput, Message, SendMessageInput } from "../types.ts";

/** A stored insight. */
export interface StoredInsight extends InsightInput {
  id: number;
  /** ISO-8601: when the relay stored it (`occurredAt` is when it happened, epoch ms). */
  createdAt: string;
}

/** A stored task-status report. */
export interface StoredTaskStatus {
  id: number;
  taskId: string;
  status: string;
  agentId: string;
  metadata?: unknown;
  createdAt: string;
}

/** A stored heartbeat. */
export interface StoredHeartbeat {
  id: number;
  agentId: string;
  status: string;
  provider: string;
  version: string;
  pid: number;
  host: string;
  createdAt: string;
}

/** A stored bus status frame. */
export interface StoredStatus {
  id: number;
  agentId: string;
  status: string;
  /** The frame's `at` (epoch ms). */
  at: number;
  receivedAt: string;
}

/** A stored permission request and the relay's answer. */
export interface StoredPermissionRequest {
  id: number;
  agentId: string;
  requestId: string;
  provider: string;
  tool: string;
  input: unknown;
  decision: "allow" | "deny";
  reason?: string;
  createdAt: string;
}

/** A reply obligation, open or cleared. */
export interface StoredObligation {
  messageId: number;
  /** The agent that owes the reply. */
  agentId: string;
  /** Who is owed. */
  from: string;
  body: string;
  createdAt: string;
  /** The message that cleared it. */
  clearedBy?: number;
  clearedAt?: string;
}

/** A read mark. */
export interface StoredRead {
  messageId: number;
  agentId: string;
  readAt: string;
}

/** A receipt: how far an agent got with a message. */
export interface StoredReceipt {
  messageId: number;
  agentId: string;
  state: "received" | "handed" | "answered" | "failed";
  /** Epoch milliseconds of the step, as the agent said. */
  at: number;
  detail?: string;
  /** ISO-8601: when the relay stored it. */
  createdAt: string;
}

/** A `DELETE /api/agents/:id`. */
export interface StoredDeparture {
  agentId: string;
  createdAt: string;
}

/** Everything the relay stored, for tests and operators. */
export interface DevRelayState {
  messages: Message[];
  reads: StoredRead[];
  obligations: StoredObligation[];
  receipts: StoredReceipt[];
  insights: StoredInsight[];
  taskStatuses: StoredTaskStatus[];
  heartbeats: StoredHeartbeat[];
  statuses: StoredStatus[];
  permissionRequests: StoredPermissionRequest[];
  departures: StoredDeparture[];
}

/** A message to store: the body of `POST /api/messages`, which may also carry a task. */
export type NewMessage = SendMessageInput & { taskId?: string };

/** An insight to store. */
export type NewInsight = Omit<StoredInsight, "id" | "createdAt">;

/** What a token check found. */
export type TokenCheck = "valid" | "expired" | "unknown";
