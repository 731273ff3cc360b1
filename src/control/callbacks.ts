/**
 * The runner's side of the control server: the {@linkcode ControlCallbacks} through which the
 * runner's state reaches the server, and the shapes those callbacks take and give
 * (docs/control-server.md).
 *
 * @module
 */
import type {
  AgentStatus,
  PermissionDecision,
  PermissionRequest,
  ProviderName,
  ReplyObligation,
} from "../types.ts";
import type { HookAnswer, HookEvent, HookPayload } from "./contract.ts";
import type { PermissionDecider } from "./permission_policy.ts";
import type { StopDecision } from "./stop_decision.ts";

/** What the server worked out for a hook, handed to `onHook`. */
export interface HookContext {
  /** The request body exactly as received (the provider's payload, unchanged). */
  raw: string;
  /** `stop`: the decision, already made and already the answer. */
  stop?: StopDecision;
  /** `permission-request`: the question asked and the decision, already the answer. */
  permission?: { request: PermissionRequest; decision: PermissionDecision };
}

/** `POST /hook-fatal`'s body: a hook that failed in a way it could not handle itself. */
export interface HookFatalReport {
  hook: string;
  error: string;
}

/** What `GET /status` shows; the runner provides it. Extra fields are passed through. */
export interface StatusSnapshot {
  agentId: string;
  provider: ProviderName;
  status: AgentStatus;
  /** The provider's pid while it runs, else the runner's. */
  pid: number;
  /** Epoch milliseconds the runner started (the server shows it as ISO-8601, adds `uptimeMs`). */
  startedAt: number;
  outbox: { pending: number; poisoned: number };
  /** The relay bus's state (`open` = connected); `/metrics` shows it as bus-connected 0/1. */
  bus?: string;
  [extra: string]: unknown;
}

/** What `GET /ready` answers: ready, or why not (the body of the 503). */
export type Readiness = { ready: true } | { ready: false; reason: string };

/** The relay's view of our credentials: `unauthorized` once it refused them (renewal failed). */
export type RelayAuth = "ok" | "unauthorized" | "unknown";

/** One extra Prometheus sample the runner wants in `/metrics`. */
export interface MetricSample {
  /** Full metric name, `[a-zA-Z_:][a-zA-Z0-9_:]*`. */
  name: string;
  help: string;
  type: "gauge" | "counter";
  value: number;
  labels?: Record<string, string>;
}

/** The runner's figures for `GET /metrics`. */
export interface MetricsSnapshot {
  outbox: { pending: number; poisoned: number; delivered: number };
  /** Anything else (usage, token figures, deliveries...). */
  samples?: MetricSample[];
}

/** The local reply-obligation snapshot, as the server reads it (a `ReplyObligationCache`). */
export interface ObligationSource {
  /** Synchronous, never throws, never reaches the relay. */
  get(): ReplyObligation[];
  /** Epoch milliseconds of the last successful refresh. */
  readonly refreshedAt: number | undefined;
  /** Why the last refresh failed, while failures last. */
  readonly lastError?: string | undefined;
}

/**
 * How the runner's state reaches the control server. Every callback must be quick; the server
 * waits at most `hookBudgetMs` for `onHook` and `decidePermission`.
 */
export interface ControlCallbacks {
  /** `GET /status`, the monitor's hello. */
  status(): StatusSnapshot;
  /** `POST /status {status}`: `source` is the body's `source` string, else `"control"`. */
  setStatus(status: AgentStatus, source: string): void;
  /** The snapshot the stop decision and `GET /reply-obligations` read. */
  obligations: ObligationSource;
  /** Ids of the relay messages delivered to the provider in the current turn. */
  deliveredThisTurn(): Iterable<number>;
  /** Answers `permission-request` hooks (see `createPermissionDecider`). */
  decidePermission: PermissionDecider;
  /**
   * Every hook, after the server worked out what it needs (`context.stop` and
   * `context.permission`). For events other than `stop` and `permission-request`, a returned
   * object is the hook's answer (default `{}`); a throw answers 500, which the hook reports FATAL.
   */
  onHook?(
    event: HookEvent,
    payload: HookPayload,
    context: HookContext,
  ): HookAnswer | void | Promise<HookAnswer | void>;
  /**
   * `POST /hook-fatal`, after the server logged it FATAL: queue the `hook_fatal` insight. It
   * returns (or resolves to) `false` when the report could not be stored durably: the hook then
   * gets a 503, never an acknowledgement of something that could be lost.
   */
  onHookFatal?(report: HookFatalReport): void | boolean | Promise<boolean>;
  /** `GET /metrics`'s runner figures. */
  metrics?(): MetricsSnapshot;
  /**
   * `GET /ready`: whether the runner can take work (bus connected, provider started). Absent
   * means always ready. A throw answers 503 with the error as the reason.
   */
  readiness?(): Readiness;
  /** The relay auth state shown by `/health` and `/status`. Absent means `unknown`. */
  relayAuth?(): RelayAuth;
}
