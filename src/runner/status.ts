/**
 * The runner's status and figures: the effective agent status (the provider's, held busy while
 * subagents run or a hand-over is under way), the counters and token usage, and how they read
 * in `/status` and `/metrics`.
 *
 * @module
 */
import type { Usage } from "../adapters/mod.ts";
import type {
  MetricSample,
  MetricsSnapshot,
  Readiness,
  RelayAuth,
  StatusSnapshot,
} from "../control/mod.ts";
import type { OutboxStats } from "../outbox/mod.ts";
import type { AgentStatus, ProviderName } from "../types.ts";

/** Counted over the run. */
export interface RunnerCounters {
  delivered: number;
  turns: number;
  failedTurns: number;
  restarts: number;
}

/** Tracks the effective status; `onChange` hears each change once. */
export class StatusTracker {
  #status: AgentStatus = "starting";
  #provider: AgentStatus = "starting";
  #subagents = 0;
  readonly #onChange: (status: AgentStatus, previous: AgentStatus) => void;

  constructor(onChange: (status: AgentStatus, previous: AgentStatus) => void) {
    this.#onChange = onChange;
  }

  /** The effective status. */
  get status(): AgentStatus {
    return this.#status;
  }

  /** Subagents running now. */
  get subagents(): number {
    return this.#subagents;
  }

  /** Sets the status outright (the runner's own: `starting`, `offline`, `error`). */
  set(status: AgentStatus): void {
    if (status === this.#status) return;
    const previous = this.#status;
    this.#status = status;
    this.#onChange(status, previous);
  }

  /** Records the provider's own status; call {@linkcode StatusTracker.recompute} after. */
  provider(status: AgentStatus): void {
    this.#provider = status;
  }

  /** A subagent started (+1) or stopped (-1); a provider (re)start resets to 0. */
  subagent(delta: 1 | -1 | 0): void {
    this.#subagents = delta === 0 ? 0 : Math.max(0, this.#subagents + delta);
  }

  /** Derives the effective status: idle is held busy while `handing` or subagents run. */
  recompute(handing: boolean): void {
    let status = this.#provider;
    if (status === "idle" && (this.#subagents > 0 || handing)) status = "busy";
    this.set(status);
  }
}

/** Adds a turn's usage into the run's totals. */
export function addUsage(total: Required<Usage>, usage: Usage): void {
  for (const key of Object.keys(total) as Array<keyof Usage>) total[key] += usage[key] ?? 0;
}

/** A zeroed usage total. */
export function emptyUsage(): Required<Usage> {
  return { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, costUsd: 0 };
}

/** Everything `/status` shows, gathered by the runner. */
export interface StatusParts {
  agentId: string;
  provider: ProviderName;
  /** The relay's URL (it holds no credentials: the config refuses any). */
  relayUrl: string;
  status: AgentStatus;
  providerPid: number | undefined;
  startedAt: number;
  version: string;
  outbox: OutboxStats | undefined;
  obligations: { count: number; refreshedAt: number | undefined };
  bus: string;
  pendingMessages: number;
  subagents: number;
  lastDeliveryAt: number | undefined;
  lastProviderEventAt: number | undefined;
  sessionId: string | undefined;
  /** The sandbox's grants, when the launcher said. */
  sandbox: { read: string[]; write: string[]; run: string[]; net: string[] } | undefined;
}

/** The `/status` object, ages taken at `now`. */
export function statusSnapshot(parts: StatusParts, now: number): StatusSnapshot {
  const age = (t: number | undefined) => t === undefined ? null : now - t;
  const stats = parts.outbox;
  return {
    agentId: parts.agentId,
    provider: parts.provider,
    relayUrl: parts.relayUrl,
    status: parts.status,
    pid: parts.providerPid ?? Deno.pid,
    runnerPid: Deno.pid,
    startedAt: parts.startedAt,
    version: parts.version,
    outbox: { pending: stats?.pending ?? 0, poisoned: stats?.poisoned ?? 0 },
    outboxTotals: {
      delivered: stats?.delivered ?? 0,
      dropped: stats?.dropped ?? 0,
      lastError: stats?.lastError ?? null,
    },
    obligations: { count: parts.obligations.count, ageMs: age(parts.obligations.refreshedAt) },
    bus: parts.bus,
    pendingMessages: parts.pendingMessages,
    subagents: parts.subagents,
    lastDeliveryAgeMs: age(parts.lastDeliveryAt),
    lastProviderEventAgeMs: age(parts.lastProviderEventAt),
    sessionId: parts.sessionId ?? null,
    ...(parts.sandbox ? { sandbox: parts.sandbox } : {}),
  };
}

/** The runner's own `/metrics` samples. */
export function metricsSnapshot(parts: {
  outbox: OutboxStats | undefined;
  counters: RunnerCounters;
  usage: Required<Usage>;
  pendingMessages: number;
}): MetricsSnapshot {
  const stats = parts.outbox;
  const counter = (name: string, help: string, value: number): MetricSample => ({
    name: `agent_relay_runner_${name}`,
    help,
    type: "counter",
    value,
  });
  return {
    outbox: {
      pending: stats?.pending ?? 0,
      poisoned: stats?.poisoned ?? 0,
      delivered: stats?.delivered ?? 0,
    },
    samples: [
      counter(
        "messages_delivered_total",
        "Relay messages handed to the provider",
        parts.counters.delivered,
      ),
      counter("turns_total", "Provider turns ended", parts.counters.turns),
      counter("failed_turns_total", "Provider turns that failed", parts.counters.failedTurns),
      counter(
        "provider_restarts_total",
        "Provider restarts after an unexpected exit",
        parts.counters.restarts,
      ),
      {
        name: "agent_relay_runner_pending_messages",
        help: "Relay messages waiting for the provider",
        type: "gauge",
        value: parts.pendingMessages,
      },
      counter("outbox_dropped_total", "Outbox events dropped by the bound", stats?.dropped ?? 0),
      counter("input_tokens_total", "Provider input tokens", parts.usage.inputTokens),
      counter("output_tokens_total", "Provider output tokens", parts.usage.outputTokens),
      counter("cost_usd_total", "Provider cost reported, USD", parts.usage.costUsd),
    ],
  };
}

/**
 * Ready: the provider runs and the bus is connected, with a token the relay takes. An
 * orchestrator waits for this (`GET /ready`) before it counts the agent as up.
 */
export function readiness(parts: {
  stopping: boolean;
  auth: RelayAuth;
  providerRunning: boolean;
  bus: string;
}): Readiness {
  if (parts.stopping) return { ready: false, reason: "the runner is stopping" };
  if (parts.auth === "unauthorized") {
    return { ready: false, reason: "the relay refused the token (unauthorized)" };
  }
  if (!parts.providerRunning) return { ready: false, reason: "the provider is not running" };
  if (parts.bus !== "open") {
    return { ready: false, reason: `the relay bus is not connected (${parts.bus})` };
  }
  return { ready: true };
}
