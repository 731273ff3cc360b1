/**
 * The runner: one agent's lifecycle, from start to exit code (docs/runner.md).
 *
 * Start order: outbox (with its lock) → control server → runner-info file → relay bus (the
 * outbox wakes on every reconnect) → reply-obligation cache → heartbeat → provider (through its
 * adapter) → inbox bootstrap (poll unread) → delivery.
 *
 * Everything the runner tells the relay (replies, the session mirror, mark-read, task status,
 * insights) goes through the durable outbox, in order, with the event's own timestamp. Relay
 * messages are delivered to the provider in arrival order, deduplicated by id, one batch per turn,
 * only when the provider is idle; a failed delivery is kept and retried.
 *
 * @module
 */
import { hostname } from "node:os";
import { join } from "node:path";
import {
  type AdapterContext,
  type AdapterEvents,
  type AdapterFactory,
  adapterFor,
  analyzeSession,
  defaultSpawner,
  firstPromptNotes,
  type ProviderAdapter,
  type SessionEvent,
  type Spawner,
  type Usage,
  writePlugin,
} from "../adapters/mod.ts";
import type { RunConfig } from "../config/mod.ts";
import {
  type ControlServer,
  createPermissionDecider,
  type HookContext,
  type HookEvent,
  type HookPayload,
  type MetricSample,
  type PermissionDecider,
  startControlServer,
  type StatusSnapshot,
} from "../control/mod.ts";
import { addSecret, getLogger, parseLogLevel, setLogLevel } from "../logger.ts";
import {
  Outbox,
  OutboxLockedError,
  outboxPath,
  type OutboxRecord,
  type SendResult,
} from "../outbox/mod.ts";
import { Heartbeat, RelayBus, RelayError, RelayHttpClient } from "../relay/mod.ts";
import { ReplyObligationCache } from "./reply_obligations.ts";
import { RestartPolicy, type RestartPolicyOptions } from "./restart_policy.ts";
import { removeRunnerInfo, writeRunnerInfo } from "./runner_info.ts";
import { loadSession, saveSession } from "./session_store.ts";
import type { AgentStatus, InsightInput, Message, SendMessageInput, TaskStatus } from "../types.ts";
import { VERSION } from "../version.ts";

const log = getLogger("runner");

/** The outbox record kinds the runner queues. */
type RecordKind = "message" | "insight" | "mark-read" | "task-status";

/** What the runner needs injected (tests make it fast and exact). */
export interface RunnerDeps {
  /** Builds the provider adapter. Default: by `config.provider`. */
  adapterFactory?: AdapterFactory;
  spawn?: Spawner;
  fetch?: typeof fetch;
  now?: () => number;
  restart?: RestartPolicyOptions;
  /** How long a graceful stop waits for the provider, then for the outbox to flush. */
  stopTimeoutMs?: number;
  flushTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  obligationsIntervalMs?: number;
  /** The log file's path, for the runner-info file. */
  logFile?: string;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** One agent's runner. `start()` it, then await `done` for the exit code. */
export class Runner {
  readonly config: RunConfig;
  readonly #deps: RunnerDeps;
  readonly #now: () => number;
  readonly #startedAt: number;
  #outbox: Outbox | undefined;
  #control: ControlServer | undefined;
  #http: RelayHttpClient;
  #bus: RelayBus | undefined;
  #obligations: ReplyObligationCache;
  #heartbeat: Heartbeat | undefined;
  #adapter: ProviderAdapter | undefined;
  #decide: PermissionDecider;
  #restart: RestartPolicy;

  #status: AgentStatus = "starting";
  #providerStatus: AgentStatus = "starting";
  #subagents = 0;
  #providerRunning = false;
  #providerStartedAt = 0;
  #resumeId: string | undefined;
  #sessionId: string | undefined;
  #transcriptPath: string | undefined;

  /** Messages waiting for the provider, in arrival order. */
  readonly #pending = new Map<number, Message>();
  /** Ids already handed to the provider (bounded), so a message is never delivered twice. */
  readonly #delivered = new Set<number>();
  /** Ids already mirrored as prompts and claimed (bounded). */
  readonly #announced = new Set<number>();
  /** Ids whose mark-read is queued (bounded). */
  readonly #markedRead = new Set<number>();
  /** Ids this runner already answered with a reply (bounded). */
  readonly #replied = new Set<number>();
  /** The messages of the current turn. */
  #turn: Message[] = [];
  #delivering = false;
  /** An unread poll is under way: deliveries wait for it (relay order). */
  #polling = false;
  /** A poll was asked for while one ran: run another when it ends. */
  #pollAgain = false;
  #pollAbort: AbortController | undefined;
  #pollRunning: Promise<void> | undefined;
  /** Bumped when a turn is given up (crash, restart): a hand-over under way then is void. */
  #turnEpoch = 0;
  /** Background work that queues events (session-end insights): awaited before the flush. */
  readonly #work = new Set<Promise<void>>();
  #drainTimer: ReturnType<typeof setTimeout> | undefined;
  #restartTimer: ReturnType<typeof setTimeout> | undefined;
  #bootstrapTimer: ReturnType<typeof setTimeout> | undefined;
  #fallbackPoll: ReturnType<typeof setInterval> | undefined;

  #lastDeliveryAt: number | undefined;
  #lastProviderEventAt: number | undefined;
  readonly #counters = { delivered: 0, turns: 0, failedTurns: 0, restarts: 0 };
  readonly #usage: Required<Usage> = {
    inputTokens: 0,
    outputTokens: 0,
    cacheReadTokens: 0,
    cacheWriteTokens: 0,
    costUsd: 0,
  };

  #stopping: Promise<void> | undefined;
  /** Set at once by `stop()`: nothing new starts after it. */
  #stopRequested = false;
  #starting: Promise<void> | undefined;
  /** Provider starts, stops and restarts run one at a time, in this chain. */
  #providerOp: Promise<void> = Promise.resolve();
  /** Bumped at every provider start: events of a replaced adapter are ignored. */
  #generation = 0;
  /** The bus `exit` command: leave the relay once the outbox is flushed. */
  #leaveOnStop = false;
  /** The last unread poll came back full: poll again when the queue runs dry. */
  #pollFull = false;
  #resolveDone!: (code: number) => void;
  /** Resolves with the exit code once the runner has stopped. */
  readonly done: Promise<number>;

  constructor(config: RunConfig, deps: RunnerDeps = {}) {
    this.config = config;
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
    this.#startedAt = this.#now();
    this.done = new Promise((resolve) => (this.#resolveDone = resolve));
    addSecret(config.token);
    this.#http = new RelayHttpClient({
      baseUrl: config.relayUrl,
      ...(config.token ? { token: config.token } : {}),
      ...(deps.fetch ? { fetch: deps.fetch } : {}),
      onTokenChange: (token) => addSecret(token),
    });
    this.#obligations = new ReplyObligationCache({
      fetch: (signal) => this.#http.replyObligations(config.agentId, { signal }),
      ...(deps.obligationsIntervalMs ? { intervalMs: deps.obligationsIntervalMs } : {}),
    });
    this.#decide = createPermissionDecider({
      policy: config.permissionPolicy,
      ask: (request, { signal }) => this.#http.askPermission(config.agentId, request, { signal }),
    });
    this.#restart = new RestartPolicy(deps.restart ?? {});
  }

  /** `<state-dir>/control-secret`: the control secret for local operators (mode 0600). */
  #secretFile(): string {
    return join(this.config.stateDir, "control-secret");
  }

  /** The current status. */
  get status(): AgentStatus {
    return this.#status;
  }

  /** The control server's port, once listening. */
  get controlPort(): number | undefined {
    return this.#control?.port;
  }

  /**
   * Starts everything; rejects (after cleaning up) when a part cannot start. A `stop()` during
   * start waits for it, then stops what started.
   */
  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    if (this.#stopRequested) return;
    const c = this.config;
    try {
      try {
        this.#outbox = new Outbox({
          path: outboxPath(c.outboxDir),
          agentId: c.agentId,
          send: (records, options) => this.#send(records, options),
        });
      } catch (error) {
        const path = outboxPath(c.outboxDir);
        const text = errorText(error);
        if (error instanceof OutboxLockedError || text.includes(path)) throw error;
        const hint = /disk I\/O error|disk is full|SQLITE_FULL|SQLITE_IOERR/i.test(text)
          ? " (is the disk full, or the filesystem read-only?)"
          : "";
        throw new Error(`Opening the outbox ${path} failed: ${text}${hint}`, { cause: error });
      }
      this.#control = startControlServer({
        port: c.controlPort,
        provider: c.provider,
        callbacks: {
          status: () => this.#snapshot(),
          // `starting` and `offline` are the runner's own to say.
          setStatus: (status) => {
            if (status === "busy" || status === "idle" || status === "error") {
              this.#onProviderStatus(status);
            }
          },
          obligations: this.#obligations,
          deliveredThisTurn: () => this.#turn.map((m) => m.id),
          decidePermission: this.#decide,
          onHook: (event, payload, context) => this.#onHook(event, payload, context),
          onHookFatal: (report) =>
            this.#queueInsight("hook_fatal", { hook: report.hook, error: report.error }),
          metrics: () => this.#metrics(),
        },
      });
      addSecret(this.#control.secret);
      await writeSecretFile(this.#secretFile(), this.#control.secret);
      this.#outbox.onChange(() => this.#publishOutbox());
      this.#recallQueued();
      await writeRunnerInfo(c.infoFile, {
        pid: Deno.pid,
        agentId: c.agentId,
        provider: c.provider,
        controlPort: this.#control.port,
        version: VERSION,
        startedAt: new Date(this.#startedAt).toISOString(),
        logFile: this.#deps.logFile ?? "",
        outboxPath: outboxPath(c.outboxDir),
        stateDir: c.stateDir,
      });
      this.#bus = new RelayBus({
        baseUrl: c.relayUrl,
        agentId: c.agentId,
        token: () => this.#http.token,
        onMessage: (message) => this.#onRelayMessage(message),
        onCommand: (command) => this.#onCommand(command),
        onReconnect: () => {
          this.#outbox?.wake();
          this.#obligations.markDirty();
          // Messages that arrived while the bus was down were never pushed: poll for them.
          this.#scheduleBootstrap(0);
        },
        onAuthError: () => this.#http.renewToken().catch(() => {}),
        // While the bus is down nothing is pushed: poll the inbox instead, every 5 s.
        onStateChange: (state) => {
          if (state === "open" || this.#stopRequested) {
            clearInterval(this.#fallbackPoll);
            this.#fallbackPoll = undefined;
          } else if (this.#fallbackPoll === undefined) {
            this.#fallbackPoll = setInterval(() => {
              if (!this.#polling) this.#scheduleBootstrap(0);
            }, 5_000);
          }
        },
        onFatal: (code, message) => {
          log.error(`the relay closed the bus for good (${code}): ${message}`);
          void this.stop(1);
        },
      });
      this.#bus.setStatus("starting");
      this.#bus.start();
      this.#obligations.start();
      this.#outbox.start();
      this.#heartbeat = new Heartbeat({
        client: this.#http,
        agentId: c.agentId,
        info: () => ({
          status: this.#status,
          provider: c.provider,
          version: VERSION,
          pid: Deno.pid,
          host: hostname(),
        }),
        ...(this.#deps.heartbeatIntervalMs ? { intervalMs: this.#deps.heartbeatIntervalMs } : {}),
      });
      this.#heartbeat.start();
      this.#resumeId = c.provider === "command" ? undefined : loadSession(c.stateDir, c.provider);
      // The first poll runs while the provider starts; deliveries wait for it (relay order).
      this.#scheduleBootstrap(0);
      await this.#serial(() => this.#spawnProvider());
    } catch (error) {
      if (this.#stopRequested) return; // Stopping anyway: stop() cleans up.
      this.#stopRequested = true;
      this.#clearTimers();
      await this.#teardown();
      await removeRunnerInfo(c.infoFile);
      await Deno.remove(this.#secretFile()).catch(() => {});
      throw error;
    }
  }

  #clearTimers(): void {
    clearInterval(this.#fallbackPoll);
    this.#fallbackPoll = undefined;
    clearTimeout(this.#drainTimer);
    clearTimeout(this.#restartTimer);
    clearTimeout(this.#bootstrapTimer);
  }

  /** Runs `op` after every provider operation before it. */
  #serial(op: () => Promise<void>): Promise<void> {
    const next = this.#providerOp.then(op);
    this.#providerOp = next.catch(() => {});
    return next;
  }

  /**
   * After a crash, the outbox still holds what the last run queued: a queued mark-read means the
   * message was delivered, a queued reply that it was answered. Remembering both keeps the inbox
   * bootstrap from delivering or answering them a second time.
   */
  #recallQueued(): void {
    const answered: number[] = [];
    let after = 0;
    for (;;) {
      const records = this.#outbox!.list({ limit: 1_000, afterSeq: after });
      if (records.length === 0) break;
      for (const record of records) {
        after = record.seq;
        const p = record.payload as Record<string, unknown> | null;
        if (record.kind === "mark-read" && typeof p?.["messageId"] === "number") {
          remember(this.#delivered, p["messageId"]);
          remember(this.#markedRead, p["messageId"]);
        } else if (
          record.kind === "message" && p?.["kind"] === "chat" && typeof p["replyTo"] === "number"
        ) {
          remember(this.#delivered, p["replyTo"]);
          remember(this.#replied, p["replyTo"]);
          this.#obligations.markAnswered([p["replyTo"]]);
          answered.push(p["replyTo"]);
        }
      }
    }
    // A kill between a reply and its mark-read: queue the mark-read now.
    for (const id of answered) this.#markRead(id, this.#now());
  }

  /** Stops gracefully (idempotent); `done` then resolves with `code`. */
  stop(code = 0): Promise<void> {
    this.#stopRequested = true;
    this.#stopping ??= (async () => {
      log.info(`stopping (exit code ${code})`);
      this.#clearTimers();
      await this.#starting?.catch(() => {});
      await this.#serial(async () => {
        try {
          await this.#adapter?.stop({ timeoutMs: this.#deps.stopTimeoutMs ?? 5_000 });
        } catch (error) {
          log.warn(`stopping the provider failed: ${errorText(error)}`);
        }
      }).catch(() => {});
      this.#clearTimers();
      this.#pollAbort?.abort();
      await Promise.allSettled([this.#pollRunning, ...this.#work]);
      this.#setStatus("offline");
      await this.#flush(this.#deps.flushTimeoutMs ?? 3_000);
      if (this.#leaveOnStop) {
        await this.#http.leave(this.config.agentId, { signal: AbortSignal.timeout(2_000) })
          .catch((error) => log.warn(`leaving the relay failed: ${errorText(error)}`));
      }
      await this.#teardown();
      await removeRunnerInfo(this.config.infoFile);
      await Deno.remove(this.#secretFile()).catch(() => {});
      log.info("stopped");
      this.#resolveDone(code);
    })();
    return this.#stopping;
  }

  /** For an immediate exit: kills the provider now, without waiting for anything. */
  killProvider(): void {
    try {
      this.#adapter?.kill?.();
    } catch {
      // Already gone.
    }
  }

  async #teardown(): Promise<void> {
    await this.#heartbeat?.stop();
    this.#obligations.stop();
    await this.#bus?.close().catch(() => {});
    await this.#control?.close().catch(() => {});
    try {
      this.#outbox?.close();
    } catch (error) {
      log.error(`closing the outbox failed: ${errorText(error)}`);
    }
  }

  /** Delivers what can be delivered within `ms`; the rest stays on disk for the next start. */
  async #flush(ms: number): Promise<void> {
    const outbox = this.#outbox;
    if (!outbox || outbox.closed) return;
    outbox.wake();
    const left = await outbox.flush({ signal: AbortSignal.timeout(ms) });
    if (left > 0) {
      log.warn(`${left} event(s) still queued at exit: kept on disk for the next start`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Status

  #setStatus(status: AgentStatus): void {
    if (status === this.#status) return;
    const previous = this.#status;
    this.#status = status;
    log.info(`status ${previous} → ${status}`);
    this.#bus?.setStatus(status, this.#now());
    this.#control?.publish({ type: "status", status, previous });
    if (status === "idle") this.#scheduleDrain(0);
  }

  /** The effective status: the provider's, held busy while subagents run. */
  #recomputeStatus(): void {
    if (this.#stopRequested) return;
    let status = this.#providerStatus;
    if (status === "idle" && (this.#subagents > 0 || this.#delivering)) status = "busy";
    this.#setStatus(status);
  }

  #onProviderStatus(status: AgentStatus): void {
    this.#lastProviderEventAt = this.#now();
    this.#providerStatus = status;
    this.#recomputeStatus();
  }

  #snapshot(): StatusSnapshot {
    const stats = this.#outbox?.stats();
    const now = this.#now();
    const age = (t: number | undefined) => t === undefined ? null : now - t;
    return {
      agentId: this.config.agentId,
      provider: this.config.provider,
      status: this.#status,
      pid: this.#adapter?.pid ?? Deno.pid,
      runnerPid: Deno.pid,
      startedAt: this.#startedAt,
      version: VERSION,
      outbox: { pending: stats?.pending ?? 0, poisoned: stats?.poisoned ?? 0 },
      outboxTotals: {
        delivered: stats?.delivered ?? 0,
        dropped: stats?.dropped ?? 0,
        lastError: stats?.lastError ?? null,
      },
      obligations: {
        count: this.#obligations.get().length,
        ageMs: age(this.#obligations.refreshedAt),
      },
      bus: this.#bus?.state ?? "idle",
      pendingMessages: this.#pending.size,
      subagents: this.#subagents,
      lastDeliveryAgeMs: age(this.#lastDeliveryAt),
      lastProviderEventAgeMs: age(this.#lastProviderEventAt),
      sessionId: this.#sessionId ?? null,
    };
  }

  #metrics() {
    const stats = this.#outbox?.stats();
    const sample = (name: string, help: string, type: "gauge" | "counter", value: number) =>
      ({ name, help, type, value }) satisfies MetricSample;
    return {
      outbox: {
        pending: stats?.pending ?? 0,
        poisoned: stats?.poisoned ?? 0,
        delivered: stats?.delivered ?? 0,
      },
      samples: [
        sample(
          "agent_relay_runner_messages_delivered_total",
          "Relay messages handed to the provider",
          "counter",
          this.#counters.delivered,
        ),
        sample(
          "agent_relay_runner_turns_total",
          "Provider turns ended",
          "counter",
          this.#counters.turns,
        ),
        sample(
          "agent_relay_runner_failed_turns_total",
          "Provider turns that failed",
          "counter",
          this.#counters.failedTurns,
        ),
        sample(
          "agent_relay_runner_provider_restarts_total",
          "Provider restarts after an unexpected exit",
          "counter",
          this.#counters.restarts,
        ),
        sample(
          "agent_relay_runner_pending_messages",
          "Relay messages waiting for the provider",
          "gauge",
          this.#pending.size,
        ),
        sample(
          "agent_relay_runner_outbox_dropped_total",
          "Outbox events dropped by the bound",
          "counter",
          stats?.dropped ?? 0,
        ),
        sample(
          "agent_relay_runner_input_tokens_total",
          "Provider input tokens",
          "counter",
          this.#usage.inputTokens,
        ),
        sample(
          "agent_relay_runner_output_tokens_total",
          "Provider output tokens",
          "counter",
          this.#usage.outputTokens,
        ),
        sample(
          "agent_relay_runner_cost_usd_total",
          "Provider cost reported, USD",
          "counter",
          this.#usage.costUsd,
        ),
      ],
    };
  }

  #publishOutbox(): void {
    const stats = this.#outbox?.stats();
    if (stats) this.#control?.publish({ type: "outbox", ...stats });
  }

  // -------------------------------------------------------------------------------------------
  // The provider

  /** Starts a provider (run it through {@linkcode Runner.#serial}). */
  async #spawnProvider(): Promise<void> {
    if (this.#stopRequested || this.#providerRunning) return;
    const c = this.config;
    const factory = this.#deps.adapterFactory ?? await adapterFor(c.provider);
    const pluginDir = c.provider === "claude" ? await writePlugin(c.stateDir) : undefined;
    const env: Record<string, string> = {
      AGENT_RELAY_RUNNER_PORT: String(this.#control!.port),
      AGENT_RELAY_RUNNER_SECRET: this.#control!.secret,
      AGENT_RELAY_AGENT_ID: c.agentId,
      // The relay token is the runner's, not the agent's.
      AGENT_RELAY_TOKEN: "",
    };
    const context: AdapterContext = {
      agentId: c.agentId,
      provider: c.provider,
      cwd: c.cwd,
      stateDir: c.stateDir,
      args: c.providerArgs,
      env,
      ...(this.#resumeId ? { resumeId: this.#resumeId } : {}),
      ...(pluginDir ? { pluginDir } : {}),
      firstPromptNotes: firstPromptNotes(c.agentId, c.workspaceJson),
      permissionPolicy: c.permissionPolicy,
      decidePermission: this.#decide,
      spawn: this.#deps.spawn ?? defaultSpawner,
      log: getLogger(c.provider),
    };
    const generation = ++this.#generation;
    const current = () => generation === this.#generation;
    const events: AdapterEvents = {
      status: (status) => current() && this.#onProviderStatus(status),
      event: (event, at) => current() && this.#onSessionEvent(event, at),
      exit: (info) => current() && this.#onProviderExit(info),
      diagnostic: (line) => getLogger(c.provider).warn(`stderr: ${line}`),
    };
    const adapter = factory(context, events);
    this.#adapter = adapter;
    this.#subagents = 0;
    this.#providerStartedAt = this.#now();
    this.#providerRunning = true;
    try {
      await adapter.start();
    } catch (error) {
      if (current()) this.#providerRunning = false;
      throw error;
    }
    log.info(`${c.provider} started (pid ${adapter.pid ?? "?"})`);
    if (this.#stopRequested) {
      await adapter.stop({ timeoutMs: this.#deps.stopTimeoutMs ?? 5_000 }).catch(() => {});
    }
  }

  /** A (re)start that failed counts as an unexpected exit: the restart policy decides. */
  async #respawn(): Promise<void> {
    try {
      await this.#spawnProvider();
    } catch (error) {
      log.error(`starting the provider failed: ${errorText(error)}`);
      this.#onProviderExit({ code: null, signal: null, expected: false });
    }
  }

  #onProviderExit(info: { code: number | null; signal: string | null; expected: boolean }): void {
    this.#providerRunning = false;
    this.#subagents = 0;
    if (info.expected || this.#stopRequested) return;
    const now = this.#now();
    const runtimeMs = now - this.#providerStartedAt;
    // The messages of an interrupted turn are delivered again after the restart.
    this.#failTurn(`the provider exited with code ${info.code ?? info.signal}`);
    const decision = this.#restart.onExit(now, runtimeMs);
    this.#queueTimeline("provider.restart_decision", {
      exitCode: info.code,
      signal: info.signal,
      runtimeMs,
      decision: decision.action,
      recentExits: decision.recentExits,
      ...(decision.action === "restart" ? { delayMs: decision.delayMs } : {}),
    });
    if (decision.action === "give-up") {
      log.error(`giving up: ${decision.reason}`);
      this.#providerStatus = "error";
      this.#setStatus("error");
      void this.stop(1);
      return;
    }
    log.warn(
      `the provider exited unexpectedly (code ${info.code ?? info.signal}) after ${
        Math.round(runtimeMs / 1000)
      } s; restarting in ${decision.delayMs} ms`,
    );
    this.#providerStatus = "starting";
    this.#recomputeStatus();
    clearTimeout(this.#restartTimer);
    this.#restartTimer = setTimeout(() => {
      this.#counters.restarts++;
      void this.#serial(() => this.#respawn());
    }, decision.delayMs);
  }

  #onSessionEvent(event: SessionEvent, at: number): void {
    this.#lastProviderEventAt = this.#now();
    switch (event.type) {
      case "session-id":
        this.#sessionId = event.id;
        this.#resumeId = event.id;
        try {
          saveSession(this.config.stateDir, this.config.provider, event.id);
        } catch (error) {
          log.warn(`saving the session id failed: ${errorText(error)}`);
        }
        return;
      case "transcript":
        this.#transcriptPath = event.path;
        return;
      case "consumed":
        log.debug(`provider consumed message(s) ${event.messageIds.join(", ")}`);
        return;
      case "prompt":
        this.#mirror("prompt", event.text, at, { origin: "provider" });
        return;
      case "reasoning":
        this.#mirror("reasoning", event.text, at);
        return;
      case "step":
        this.#mirror("step", event.text, at, {
          kind: event.kind,
          ...(event.tool ? { tool: event.tool } : {}),
        });
        return;
      case "response":
        this.#onResponse(event.text, at, event.replyTo);
        return;
      case "turn-end":
        this.#onTurnEnd(event.ok, event.error, event.usage);
        return;
    }
  }

  #onResponse(text: string, at: number, replyTo: number | undefined): void {
    const targets = replyTo !== undefined
      ? this.#turn.filter((m) => m.id === replyTo)
      : this.#turn.filter((m) => !this.#replied.has(m.id));
    const fresh = targets.filter((m) => !this.#replied.has(m.id));
    if (fresh.length === 0) {
      // A turn that answers no relay message goes to the mirror only.
      this.#mirror("response", text, at);
      return;
    }
    for (const message of fresh) {
      remember(this.#replied, message.id);
      this.#queue(
        "message",
        {
          from: this.config.agentId,
          to: message.from,
          kind: "chat",
          body: text,
          replyTo: message.id,
          payload: { session: { type: "response", provider: this.config.provider } },
        } satisfies SendMessageInput,
        at,
      );
      // Read together with its answer, not at the end of the turn: a kill later in the turn
      // must not make an answered message look unanswered.
      this.#markRead(message.id, at);
    }
    this.#obligations.markAnswered(fresh.map((m) => m.id));
    this.#obligations.markDirty();
  }

  #onTurnEnd(ok: boolean, error: string | undefined, usage: Usage | undefined): void {
    this.#counters.turns++;
    if (usage) {
      for (const key of Object.keys(this.#usage) as Array<keyof Usage>) {
        this.#usage[key] += usage[key] ?? 0;
      }
      const figures = Object.entries(usage).filter(([, v]) => typeof v === "number");
      if (figures.length > 0) {
        const text = figures.map(([k, v]) => `${k} ${v}`).join(", ");
        this.#mirror("usage", `Turn usage: ${text}`, this.#now(), { usage });
      }
    }
    if (!ok) {
      this.#counters.failedTurns++;
      this.#mirror("error", `The turn failed: ${error ?? "unknown error"}`, this.#now());
    }
    for (const message of this.#turn) {
      if (message.taskId) this.#queueTask(message, ok ? "done" : "failed");
      // Read once the turn is over: a runner stopped or killed mid-turn leaves the message unread,
      // so the next start delivers it again.
      if (!this.#stopRequested) this.#markRead(message.id, this.#now());
    }
    this.#turn = [];
    if (this.#pending.size === 0 && this.#pollFull) this.#scheduleBootstrap(1_000);
    this.#scheduleDrain(0);
  }

  /** The provider died mid-turn: its messages go back to the front of the queue. */
  #failTurn(reason: string): void {
    this.#turnEpoch++;
    if (this.#turn.length === 0) return;
    log.warn(
      `turn interrupted (${reason}): ${this.#turn.length} message(s) will be delivered again`,
    );
    const again = new Map<number, Message>();
    for (const message of this.#turn) {
      if (this.#replied.has(message.id)) continue;
      this.#delivered.delete(message.id);
      again.set(message.id, message);
    }
    for (const [id, message] of this.#pending) again.set(id, message);
    this.#pending.clear();
    for (const message of [...again.values()].sort((a, b) => a.id - b.id)) {
      this.#pending.set(message.id, message);
    }
    this.#turn = [];
  }

  // -------------------------------------------------------------------------------------------
  // Hooks (Claude Code)

  #onHook(event: HookEvent, payload: HookPayload, context: HookContext): HookPayload | void {
    const str = (key: string) =>
      typeof payload[key] === "string" ? payload[key] as string : undefined;
    this.#lastProviderEventAt = this.#now();
    switch (event) {
      case "session-start": {
        const transcript = str("transcript_path");
        if (transcript) this.#transcriptPath = transcript;
        return;
      }
      case "subagent-start":
        this.#subagents++;
        this.#recomputeStatus();
        return;
      case "subagent-stop":
        this.#subagents = Math.max(0, this.#subagents - 1);
        this.#recomputeStatus();
        return;
      case "stop":
        if (context.stop?.blocked) {
          // What the agent said so far answers the messages it was given; the turn goes on to
          // answer the owed ones, which count as delivered now.
          const said = str("last_assistant_message");
          if (said && said.trim() !== "") this.#onResponse(said, this.#now(), undefined);
          for (const owed of context.stop.outstanding) {
            if (this.#turn.some((m) => m.id === owed.messageId)) continue;
            const message: Message = this.#pending.get(owed.messageId) ?? {
              id: owed.messageId,
              from: owed.from,
              to: this.config.agentId,
              kind: "chat",
              body: owed.body ?? "",
              createdAt: String(owed.createdAt),
            };
            this.#turn.push(message);
            this.#pending.delete(message.id);
            remember(this.#delivered, message.id);
            remember(this.#announced, message.id);
          }
        }
        return;
      case "pre-compact":
      case "post-compact":
        this.#mirror(
          "step",
          event === "pre-compact" ? "Compacting context" : "Context compacted",
          this.#now(),
          {
            kind: "compact",
          },
        );
        return;
      case "session-end": {
        const transcript = str("transcript_path") ?? this.#transcriptPath;
        if (transcript) {
          const work = this.#queueContextRatio(transcript, str("reason"));
          this.#work.add(work);
          void work.finally(() => this.#work.delete(work));
        }
        return;
      }
      default:
        return;
    }
  }

  async #queueContextRatio(transcriptPath: string, reason: string | undefined): Promise<void> {
    try {
      const analysis = analyzeSession(await Deno.readTextFile(transcriptPath));
      if (!analysis) return; // No tool calls: nothing to measure.
      this.#queueInsight("context_ratio", {
        ...analysis.metric,
        ...(reason ? { endReason: reason } : {}),
      }, analysis.outcome);
      log.info(
        `context_ratio ${
          analysis.metric.ratio.toFixed(2)
        } (${analysis.metric.gatheringCalls}/${analysis.metric.totalToolCalls} gathering) queued`,
      );
    } catch (error) {
      log.warn(`reading the transcript ${transcriptPath} failed: ${errorText(error)}`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Relay messages in

  #onRelayMessage(message: Message): void {
    if (message.kind !== "chat" || message.to !== this.config.agentId) return;
    if (this.#delivered.has(message.id) || this.#pending.has(message.id)) return;
    // Kept in relay order (ids grow with time), whether a message came pushed or polled.
    const last = [...this.#pending.keys()].at(-1);
    if (last === undefined || message.id > last) {
      this.#pending.set(message.id, message);
    } else {
      const all = [...this.#pending.values(), message].sort((a, b) => a.id - b.id);
      this.#pending.clear();
      for (const m of all) this.#pending.set(m.id, m);
    }
    this.#obligations.annotate({ id: message.id, body: message.body, from: message.from });
    this.#obligations.markDirty();
    this.#scheduleDrain(0);
  }

  #scheduleBootstrap(delayMs: number): void {
    if (this.#stopRequested) return;
    clearTimeout(this.#bootstrapTimer);
    this.#bootstrapTimer = setTimeout(() => void this.#bootstrap(), delayMs);
  }

  /** Polls unread messages: at start and after every bus reconnect, retried until it succeeds. */
  #bootstrap(): Promise<void> {
    if (this.#stopRequested) return Promise.resolve();
    if (this.#polling) {
      this.#pollAgain = true; // One poll at a time; another follows this one.
      return Promise.resolve();
    }
    this.#pollRunning = this.#poll().finally(() => (this.#pollRunning = undefined));
    return this.#pollRunning;
  }

  async #poll(): Promise<void> {
    const limit = 100;
    // No delivery while the poll runs: an older message it returns must not be overtaken by a
    // newer one pushed meanwhile.
    this.#polling = true;
    this.#pollAbort = new AbortController();
    try {
      const messages = await this.#http.pollUnread(this.config.agentId, {
        limit,
        signal: this.#pollAbort.signal,
      });
      if (this.#stopRequested) return;
      // The relay answers again: an outbox backing off need not wait out its delay.
      if ((this.#outbox?.stats().consecutiveFailures ?? 0) > 0) this.#outbox?.wake();
      const before = this.#pending.size;
      for (const message of messages) {
        if (message.to === this.config.agentId && message.kind !== "chat") {
          // Never delivered: mark it read so it cannot fill every page of the inbox.
          this.#markRead(message.id, this.#now());
          continue;
        }
        this.#onRelayMessage(message);
      }
      const fresh = this.#pending.size - before;
      // A full page may hide more: poll again once this lot is answered (their mark-reads
      // sent), or soon if nothing on the page was new.
      this.#pollFull = messages.length >= limit;
      if (this.#pollFull && fresh === 0) this.#scheduleBootstrap(5_000);
      log.info(`inbox poll: ${messages.length} unread message(s), ${fresh} new`);
    } catch (error) {
      if (this.#stopRequested) return;
      log.warn(`inbox poll failed (${errorText(error)}); retrying in 5 s`);
      this.#scheduleBootstrap(5_000);
    } finally {
      this.#polling = false;
      this.#pollAbort = undefined;
      if (this.#pollAgain) {
        this.#pollAgain = false;
        this.#scheduleBootstrap(0);
      }
      this.#scheduleDrain(0);
    }
  }

  #scheduleDrain(delayMs: number): void {
    if (this.#stopRequested) return;
    clearTimeout(this.#drainTimer);
    this.#drainTimer = setTimeout(() => void this.#drain(), delayMs);
  }

  async #drain(): Promise<void> {
    const adapter = this.#adapter;
    if (
      this.#stopRequested || this.#delivering || this.#polling || !adapter ||
      !this.#providerRunning ||
      this.#pending.size === 0 || this.#turn.length > 0 ||
      // A failed turn leaves the provider in `error`, still able to take the next one.
      (this.#status !== "idle" && this.#status !== "error")
    ) return;
    const batch = [...this.#pending.values()].slice(0, 20);
    this.#delivering = true;
    this.#turn = batch;
    // Announced before the hand-over, so they come before anything the turn produces; once per
    // message, so a retried hand-over is not echoed or claimed twice.
    const now = this.#now();
    for (const message of batch) {
      if (this.#announced.has(message.id)) continue;
      remember(this.#announced, message.id);
      this.#mirror(
        "prompt",
        message.body,
        now,
        { origin: "relay", messageId: message.id },
        message.from,
      );
      if (message.taskId) this.#queueTask(message, "in_progress");
    }
    const epoch = this.#turnEpoch;
    try {
      await adapter.deliver(batch);
      // The turn was given up during the hand-over (a restart): it is back in the queue.
      if (epoch !== this.#turnEpoch) throw new Error("the provider was restarted meanwhile");
      this.#lastDeliveryAt = this.#now();
      this.#counters.delivered += batch.length;
      for (const message of batch) {
        this.#pending.delete(message.id);
        remember(this.#delivered, message.id);
      }
      log.info(`delivered message(s) ${batch.map((m) => `#${m.id}`).join(", ")}`);
    } catch (error) {
      log.warn(`delivery failed (${errorText(error)}); the message(s) stay queued`);
      if (epoch === this.#turnEpoch) this.#turn = [];
      this.#delivering = false;
      this.#recomputeStatus();
      this.#scheduleDrain(1_000);
      return;
    }
    this.#delivering = false;
    this.#recomputeStatus();
    // The turn may have ended (or failed) while the hand-over was under way.
    if (this.#turn.length === 0) this.#scheduleDrain(0);
  }

  // -------------------------------------------------------------------------------------------
  // Bus commands

  async #onCommand(command: { type: string; [k: string]: unknown }): Promise<unknown> {
    switch (command.type) {
      case "interrupt":
        await this.#adapter?.interrupt();
        return { interrupted: true };
      case "restart":
        log.info("restart requested over the bus");
        await this.#serial(async () => {
          clearTimeout(this.#restartTimer);
          // The turn's messages go back in the queue first: the stop may end the turn.
          this.#failTurn("restart requested");
          this.#providerStatus = "starting";
          this.#recomputeStatus();
          await this.#adapter?.stop({ timeoutMs: this.#deps.stopTimeoutMs ?? 5_000 });
          await this.#respawn();
        });
        return { restarted: true };
      case "exit":
        log.info("exit requested over the bus: leaving the relay once the outbox is flushed");
        this.#leaveOnStop = true;
        setTimeout(() => void this.stop(0), 0);
        return { exiting: true };
      case "set-log-level": {
        const level = parseLogLevel(
          typeof command["level"] === "string" ? command["level"] : undefined,
        );
        if (!level) throw new Error(`level ${JSON.stringify(command["level"])} is not a log level`);
        return { level, previous: setLogLevel(level) };
      }
      default:
        throw new Error(`unknown command ${JSON.stringify(command.type)}`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Out through the outbox

  #queue(kind: RecordKind, payload: unknown, occurredAt: number): void {
    try {
      this.#outbox?.enqueue({ kind, payload, occurredAt });
    } catch (error) {
      log.error(`queueing a ${kind} event failed: ${errorText(error)}`);
    }
  }

  /** Queues the mark-read of a message, once. */
  #markRead(messageId: number, at: number): void {
    if (this.#markedRead.has(messageId)) return;
    remember(this.#markedRead, messageId);
    this.#queue("mark-read", { messageId }, at);
  }

  #mirror(
    type: string,
    body: string,
    at: number,
    extra: Record<string, unknown> = {},
    from = this.config.agentId,
  ): void {
    this.#queue(
      "message",
      {
        from,
        to: this.config.agentId,
        kind: "session",
        body,
        payload: { session: { type, provider: this.config.provider, ...extra } },
      } satisfies SendMessageInput,
      at,
    );
  }

  #queueTimeline(status: string, details: Record<string, unknown>): void {
    this.#mirror("timeline", status, this.#now(), { status, ...details });
  }

  #queueTask(message: Message, status: TaskStatus): void {
    this.#queue(
      "task-status",
      { taskId: message.taskId, status, messageId: message.id },
      this.#now(),
    );
  }

  #queueInsight(signal: string, value: unknown, outcome?: unknown): void {
    const insight: Omit<InsightInput, "occurredAt" | "idempotencyKey"> = {
      sessionId: this.#sessionId ?? `runner-${this.#startedAt}`,
      project: this.config.cwd,
      agentId: this.config.agentId,
      signal,
      value,
      ...(outcome !== undefined ? { outcome } : {}),
      source: "runner",
    };
    this.#queue("insight", insight, this.#now());
  }

  /** The outbox transport: one relay call per record, in order; stops at the first failure. */
  async #send(records: OutboxRecord[], options: { signal: AbortSignal }): Promise<SendResult[]> {
    const results: SendResult[] = [];
    for (const record of records) {
      try {
        await this.#sendOne(record, options.signal);
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
  }

  async #sendOne(record: OutboxRecord, signal: AbortSignal): Promise<void> {
    const p = record.payload as Record<string, unknown>;
    switch (record.kind as RecordKind) {
      case "message":
        await this.#http.sendMessage({
          ...(p as unknown as SendMessageInput),
          occurredAt: record.occurredAt,
          idempotencyKey: record.idempotencyKey,
        }, { signal });
        return;
      case "insight":
        await this.#http.recordInsight({
          ...(p as unknown as InsightInput),
          occurredAt: record.occurredAt,
          idempotencyKey: record.idempotencyKey,
        }, { signal });
        return;
      case "mark-read":
        await this.#http.markRead(p["messageId"] as number, this.config.agentId, { signal });
        return;
      case "task-status":
        await this.#http.setTaskStatus(p["taskId"] as string, {
          status: p["status"] as TaskStatus,
          agentId: this.config.agentId,
          metadata: { messageId: p["messageId"], completedBy: "runner" },
        }, { signal });
        return;
      default:
        throw new RelayError(`Unknown outbox record kind ${JSON.stringify(record.kind)}`, {
          kind: "permanent",
        });
    }
  }
}

/** Writes the control secret, readable by its owner only, for operators' `/status` calls. */
async function writeSecretFile(path: string, secret: string): Promise<void> {
  const tmp = `${path}.${Deno.pid}.tmp`;
  await Deno.writeTextFile(tmp, secret + "\n", { mode: 0o600 });
  await Deno.chmod(tmp, 0o600);
  await Deno.rename(tmp, path);
}

/** Adds to a bounded set of ids (the oldest go first). */
function remember(set: Set<number>, id: number, max = 10_000): void {
  set.add(id);
  if (set.size > max) {
    const oldest = set.values().next().value;
    if (oldest !== undefined) set.delete(oldest);
  }
}
