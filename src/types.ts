/**
 * Wire types shared by the relay client, the reference relay, the runner and the adapters
 * (docs/protocol.md).
 *
 * @module
 */

/** An agent's status, as sent in bus status frames and shown by `/status`. */
export type AgentStatus = "starting" | "idle" | "busy" | "error" | "offline";
/** Every {@linkcode AgentStatus}. */
export const AGENT_STATUSES: readonly AgentStatus[] = [
  "starting",
  "idle",
  "busy",
  "error",
  "offline",
];

/** The providers the runner can drive. */
export type ProviderName = "claude" | "codex" | "command";
/** Every {@linkcode ProviderName}. */
export const PROVIDERS: readonly ProviderName[] = ["claude", "codex", "command"];

/** A relay message. `createdAt` is ISO-8601 UTC as the relay sends it. */
export interface Message {
  id: number;
  from: string;
  to: string;
  /** `chat` is delivered to the provider; `session` is display-only mirror traffic. */
  kind: string;
  body: string;
  replyTo?: number;
  payload?: unknown;
  taskId?: string;
  createdAt: string;
}

/** The body of `POST /api/messages`. */
export interface SendMessageInput {
  from: string;
  to: string;
  kind: string;
  body: string;
  replyTo?: number;
  payload?: unknown;
  /** Epoch milliseconds of the event. */
  occurredAt?: number;
  idempotencyKey?: string;
}

/** A reply the agent owes: a `chat` message to it that no message of its has answered yet. */
export interface ReplyObligation {
  messageId: number;
  from: string;
  /** ISO-8601 (or epoch ms) as the relay sent it. */
  createdAt: string | number;
  /** The message text, when known locally (the stop decision quotes it). */
  body?: string;
}

/** The body of `POST /api/insights`. */
export interface InsightInput {
  sessionId: string;
  project: string;
  agentId: string;
  signal: string;
  value: unknown;
  outcome?: unknown;
  source: string;
  occurredAt: number;
  idempotencyKey?: string;
}

/** A task's status as the runner reports it. */
export type TaskStatus = "in_progress" | "done" | "failed";

/** The body of `POST /api/agents/:id/heartbeat`. */
export interface HeartbeatInput {
  status: AgentStatus;
  provider: ProviderName;
  version: string;
  pid: number;
  host: string;
}

/** A tool-permission question, asked of the configured policy (and maybe the relay). */
export interface PermissionRequest {
  requestId: string;
  provider: ProviderName;
  tool: string;
  input: unknown;
}

/** The answer to a {@linkcode PermissionRequest}. */
export interface PermissionDecision {
  decision: "allow" | "deny";
  reason?: string;
}

/** How the runner answers tool-permission questions. */
export type PermissionPolicy = "allow" | "deny" | "ask-relay";
/** Every {@linkcode PermissionPolicy}. */
export const PERMISSION_POLICIES: readonly PermissionPolicy[] = ["allow", "deny", "ask-relay"];

/** A bus command sent by the relay to the runner. */
export interface BusCommand {
  type: "interrupt" | "restart" | "exit" | "set-log-level" | string;
  [param: string]: unknown;
}
