/**
 * The runner: one agent's lifecycle, from start to exit code (docs/runner.md), and the wiring of
 * its parts. The parts own the logic: {@linkcode Inbox} and {@linkcode Delivery} (messages in and
 * turns), {@linkcode EventQueue} (everything out, through the durable outbox),
 * {@linkcode ProviderSupervisor} (the provider and its restarts), {@linkcode StatusTracker}
 * (status and figures) and {@linkcode applyHook} (what hooks change).
 *
 * Start order: outbox (with its lock) -> control server -> runner-info file -> relay bus (the
 * outbox wakes on every reconnect) -> reply-obligation cache -> heartbeat -> first inbox poll ->
 * provider. Stop order: provider -> poll -> flush the outbox -> bus, control server, outbox.
 *
 * @module
 */
import {
  type AdapterFactory,
  defaultSpawner,
  type SessionEvent,
  type Spawner,
} from "../adapters/mod.ts";
import { firstPromptNotes } from "../adapters/mod.ts";
import type { RunConfig } from "../config/mod.ts";
import {
  type ControlServer,
  createPermissionDecider,
  type PermissionDecider,
  startControlServer,
} from "../control/mod.ts";
import { addSecret, getLogger } from "../logger.ts";
import { type Outbox, outboxPath } from "../outbox/mod.ts";
import { Heartbeat, RelayBus, RelayHttpClient } from "../relay/mod.ts";
import type { AgentStatus } from "../types.ts";
import { type Clock, errorText, join, systemClock } from "../util/mod.ts";
import { VERSION } from "../version.ts";
import { Delivery } from "./delivery.ts";
import { EventQueue } from "./event_queue.ts";
import { applyHook } from "./hooks.ts";
import { applySessionEvent } from "./session_events.ts";
import { Inbox } from "./inbox.ts";
import { ProviderSupervisor } from "./provider.ts";
import { type BusCommandFrame, runCommand } from "./commands.ts";
import { openOutbox, writeSecretFile } from "./files.ts";
import { recallQueued } from "./recall.ts";
import { Recovery } from "./recovery.ts";
import { readTokenFile } from "./token_file.ts";
import { TokenKeeper } from "./token_keeper.ts";
import { relaySend } from "./relay_send.ts";
import { ReplyObligationCache } from "./reply_obligations.ts";
import { RestartPolicy, type RestartPolicyOptions } from "./restart_policy.ts";
import { removeRunnerInfo, writeRunnerInfo } from "./runner_info.ts";
import { loadSession, saveSession } from "./session_store.ts";
import {
  addUsage,
  emptyUsage,
  metricsSnapshot,
  readiness,
  type RunnerCounters,
  statusSnapshot,
  StatusTracker,
} from "./status.ts";

const log = getLogger("runner");

/** What the runner needs injected (tests make it fast and exact). */
export interface RunnerDeps {
  /** Builds the provider adapter. Default: by `config.provider`. */
  adapterFactory?: AdapterFactory;
  spawn?: Spawner;
  fetch?: typeof fetch;
  /** Time and timers. Default: the system clock. */
  clock?: Clock;
  restart?: RestartPolicyOptions;
  /** How long a graceful stop waits for the provider, then for the outbox to flush. */
  stopTimeoutMs?: number;
  flushTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  obligationsIntervalMs?: number;
  /** The log file's path, for the runner-info file. */
  logFile?: string;
  /**
   * This run's id: the provider and everything it starts carry it (`AGENT_RELAY_RUN_ID`), so a
   * later run can find what this one left. Default: a random UUID.
   */
  runId?: string;
  /** The grants this run's sandbox holds, shown in `/status` (set by the launcher). */
  sandbox?: SandboxGrants;
}

/** What a run may touch: the paths and hosts of its permission grants. */
export interface SandboxGrants {
  read: string[];
  write: string[];
  run: string[];
  net: string[];
}

/** One agent's runner. `start()` it, then await `done` for the exit code. */
export class Runner {
  readonly config: RunConfig;
  /** This run's id (see {@linkcode RunnerDeps.runId}). */
  readonly runId: string;
  readonly #deps: RunnerDeps;
  readonly #clock: Clock;
  readonly #startedAt: number;
  readonly #http: RelayHttpClient;
  readonly #obligations: ReplyObligationCache;
  readonly #decide: PermissionDecider;
  readonly #inbox: Inbox;
  readonly #events: EventQueue;
  readonly #delivery: Delivery;
  readonly #provider: ProviderSupervisor;
  readonly #status: StatusTracker;
  #outbox: Outbox | undefined;
  #control: ControlServer | undefined;
  #bus: RelayBus | undefined;
  #heartbeat: Heartbeat | undefined;
  readonly #recovery: Recovery;

  #resumeId: string | undefined;
  #sessionId: string | undefined;
  #lastProviderEventAt: number | undefined;
  readonly #token: TokenKeeper;
  readonly #counters: RunnerCounters = { delivered: 0, turns: 0, failedTurns: 0, restarts: 0 };
  readonly #usage = emptyUsage();

  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  /** Set at once by `stop()`: nothing new starts after it. */
  #stopRequested = false;
  /** The bus `exit` command: leave the relay once the outbox is flushed. */
  #leaveOnStop = false;
  #resolveDone!: (code: number) => void;
  /** Resolves with the exit code once the runner has stopped. */
  readonly done: Promise<number>;

  constructor(config: RunConfig, deps: RunnerDeps = {}) {
    this.config = config;
    this.#deps = deps;
    this.#clock = deps.clock ?? systemClock;
    const now = () => this.#clock.now();
    this.#startedAt = now();
    this.done = new Promise((resolve) => (this.#resolveDone = resolve));
    this.runId = deps.runId ?? crypto.randomUUID();
    const token = config.tokenFile ? readTokenFile(config.tokenFile) : config.token;
    addSecret(token);
    this.#http = new RelayHttpClient({
      baseUrl: config.relayUrl,
      ...(token ? { token } : {}),
      ...(deps.fetch ? { fetch: deps.fetch } : {}),
      onTokenChange: (token) => addSecret(token),
    });
    this.#token = new TokenKeeper(this.#http, { tokenFile: config.tokenFile });
    this.#obligations = new ReplyObligationCache({
      fetch: (signal) => this.#http.replyObligations(config.agentId, { signal }),
      ...(deps.obligationsIntervalMs ? { intervalMs: deps.obligationsIntervalMs } : {}),
    });
    this.#decide = createPermissionDecider({
      policy: config.permissionPolicy,
      ask: (request, { signal }) => this.#http.askPermission(config.agentId, request, { signal }),
    });
    this.#status = new StatusTracker((status, previous) => {
      log.info(`status ${previous} \u2192 ${status}`);
      this.#bus?.setStatus(status, now());
      this.#control?.publish({ type: "status", status, previous });
      if (status === "idle") this.#delivery.drainSoon(0);
    });
    this.#inbox = new Inbox(config.agentId, { turnRetries: config.turnRetries });
    this.#events = new EventQueue({
      agentId: config.agentId,
      provider: config.provider,
      project: config.cwd,
      sessionId: () => this.#sessionId ?? `runner-${this.#startedAt}`,
      now,
    });
    this.#delivery = new Delivery({
      inbox: this.#inbox,
      events: this.#events,
      clock: this.#clock,
      obligations: this.#obligations,
      poll: (options) => this.#http.pollUnread(config.agentId, options),
      readyAdapter: () => this.#readyAdapter(),
      stopping: () => this.#stopRequested,
      onHandingChange: () => this.#recomputeStatus(),
      onPollSuccess: () => {
        this.#token.accepted();
        // The relay answers again: an outbox backing off need not wait out its delay.
        if ((this.#outbox?.stats().consecutiveFailures ?? 0) > 0) this.#outbox?.wake();
      },
      onDelivered: (count) => (this.#counters.delivered += count),
    });
    this.#recovery = new Recovery({
      clock: this.#clock,
      probe: ({ signal }) => this.#http.probe({ signal }),
      waiting: () => this.#waitingForRelay(),
      wake: () => {
        log.info("the relay answers again: waking the outbox and the bus");
        this.#outbox?.wake();
        this.#bus?.reconnectNow();
      },
    });
    this.#provider = new ProviderSupervisor({
      config,
      clock: this.#clock,
      restart: new RestartPolicy(deps.restart ?? config.restart),
      spawn: deps.spawn ?? defaultSpawner,
      decide: this.#decide,
      ...(deps.adapterFactory ? { factory: deps.adapterFactory } : {}),
      stopTimeoutMs: deps.stopTimeoutMs ?? config.stopTimeoutMs,
      env: () => ({
        AGENT_RELAY_RUNNER_PORT: String(this.#control!.port),
        AGENT_RELAY_RUNNER_SECRET: this.#control!.secret,
        AGENT_RELAY_AGENT_ID: config.agentId,
        // Hooks send the secret only while this runner lives.
        AGENT_RELAY_RUNNER_PID: String(Deno.pid),
        AGENT_RELAY_RUN_ID: this.runId,
        // The relay token is the runner's, not the agent's.
        AGENT_RELAY_TOKEN: "",
        AGENT_RELAY_TOKEN_FILE: "",
      }),
      resumeId: () => this.#resumeId,
      notes: firstPromptNotes(config.agentId, config.workspaceJson),
      stopping: () => this.#stopRequested,
      status: (status) => this.#onProviderStatus(status),
      event: (event, at) => this.#onSessionEvent(event, at),
      crashed: (info, runtimeMs, decision) => {
        this.#status.subagent(0);
        // The messages of an interrupted turn are delivered again after the restart.
        this.#delivery.failTurn(`the provider exited with code ${info.code ?? info.signal}`, {
          cause: "crash",
        });
        this.#events.timeline("provider.restart_decision", {
          exitCode: info.code,
          signal: info.signal,
          runtimeMs,
          decision: decision.action,
          recentExits: decision.recentExits,
          ...(decision.action === "restart" ? { delayMs: decision.delayMs } : {}),
        });
        if (decision.action === "give-up") {
          log.error(`giving up: ${decision.reason}`);
          this.#status.provider("error");
          this.#status.set("error");
          void this.stop(1);
          return;
        }
        if (info.byInterrupt) {
          log.info(
            `the provider exited after an interrupt (code ${
              info.code ?? info.signal
            }); starting it again`,
          );
        } else {
          log.warn(
            `the provider exited unexpectedly (code ${info.code ?? info.signal}) after ${
              Math.round(runtimeMs / 1000)
            } s; restarting in ${decision.delayMs} ms`,
          );
        }
        this.#status.provider("starting");
        this.#recomputeStatus();
      },
    });
  }

  /** Whether the outbox backs off or the bus is down: something waits for the relay. */
  #waitingForRelay(): boolean {
    if (this.#stopRequested) return false;
    const failing = (this.#outbox?.stats().consecutiveFailures ?? 0) > 0;
    const state = this.#bus?.state;
    return failing || state === "connecting";
  }

  /** `<state-dir>/control-secret`: the control secret for local operators (mode 0600). */
  #secretFile(): string {
    return join(this.config.stateDir, "control-secret");
  }

  /** The current status. */
  get status(): AgentStatus {
    return this.#status.status;
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
      this.#outbox = openOutbox(c, relaySend(this.#http, { agentId: c.agentId }));
      this.#events.attach(this.#outbox);
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
          deliveredThisTurn: () => this.#inbox.turnMessages.map((m) => m.id),
          decidePermission: this.#decide,
          onHook: (event, payload, context) => {
            this.#lastProviderEventAt = this.#clock.now();
            applyHook(event, payload, {
              context,
              targets: {
                delivery: this.#delivery,
                events: this.#events,
                subagent: (delta) => {
                  this.#status.subagent(delta);
                  this.#recomputeStatus();
                },
                now: () => this.#clock.now(),
              },
            });
            this.#provider.adapter?.onHook?.(event, payload);
          },
          onHookFatal: (report) => {
            const queued = this.#events.insight("hook_fatal", report);
            if (!queued || queued.durable) return queued !== undefined;
            // Held in memory while another process locks the file: acknowledged once stored.
            return this.#outbox!.whenDurable(queued.seq, { signal: AbortSignal.timeout(1_000) });
          },
          readiness: () =>
            readiness({
              stopping: this.#stopRequested,
              auth: this.#token.state,
              providerRunning: this.#provider.running,
              bus: this.#bus?.state ?? "idle",
            }),
          relayAuth: () => this.#token.state,
          metrics: () =>
            metricsSnapshot({
              outbox: this.#outbox?.stats(),
              counters: { ...this.#counters, restarts: this.#provider.restarts },
              usage: this.#usage,
              pendingMessages: this.#inbox.pendingCount,
            }),
        },
      });
      addSecret(this.#control.secret);
      writeSecretFile(this.#secretFile(), this.#control.secret);
      this.#outbox.onChange(() => {
        this.#publishOutbox();
        this.#recovery.check();
      });
      this.#recall();
      writeRunnerInfo(c.infoFile, {
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
      this.#bus = this.#openBus();
      this.#bus.setStatus("starting");
      this.#bus.start();
      this.#obligations.start();
      this.#outbox.start();
      this.#heartbeat = new Heartbeat({
        client: this.#http,
        agentId: c.agentId,
        info: () => ({
          status: this.#status.status,
          provider: c.provider,
          version: VERSION,
          pid: Deno.pid,
          host: Deno.hostname(),
        }),
        ...(this.#deps.heartbeatIntervalMs ? { intervalMs: this.#deps.heartbeatIntervalMs } : {}),
      });
      this.#heartbeat.start();
      this.#resumeId = c.provider === "command" ? undefined : loadSession(c.stateDir, c.provider);
      // The first poll runs while the provider starts; deliveries wait for it (relay order).
      this.#delivery.pollSoon(0);
      await this.#provider.start();
    } catch (error) {
      if (this.#stopRequested) return; // Stopping anyway: stop() cleans up.
      this.#stopRequested = true;
      this.#delivery.cancelTimers();
      await this.#teardown();
      await removeRunnerInfo(c.infoFile);
      await Deno.remove(this.#secretFile()).catch(() => {});
      throw error;
    }
  }

  #openBus(): RelayBus {
    const c = this.config;
    return new RelayBus({
      baseUrl: c.relayUrl,
      agentId: c.agentId,
      token: () => this.#http.token,
      onMessage: (message) => this.#delivery.receive(message),
      onCommand: (command) => this.#onCommand(command),
      onReconnect: () => {
        this.#outbox?.wake();
        this.#obligations.markDirty();
        // Messages that arrived while the bus was down were never pushed: poll for them, and
        // hold what the new connection pushes until that poll has succeeded (relay order).
        this.#inbox.fallBehind();
        this.#delivery.pollSoon(0);
      },
      onAuthError: () => this.#token.renew(),
      // While the bus is down nothing is pushed: poll the inbox instead, every 5 s.
      onStateChange: (state) => {
        if (state === "open") this.#token.accepted();
        this.#delivery.busDown(state !== "open");
        this.#recovery.check();
      },
      onFatal: (code, message) => {
        log.error(`the relay closed the bus for good (${code}): ${message}`);
        void this.stop(1);
      },
    });
  }

  /** A crash's leftovers in the outbox: remembered, and a reply's mark-read queued if missing. */
  #recall(): void {
    const recalled = recallQueued((options) => this.#outbox!.list(options));
    this.#inbox.recall(recalled);
    this.#obligations.markAnswered(recalled.answered);
    // A kill between a reply and its mark-read: queue the mark-read now.
    for (const id of recalled.answered) this.#delivery.markRead(id, this.#clock.now());
  }

  /** Stops gracefully (idempotent); `done` then resolves with `code`. */
  stop(code = 0): Promise<void> {
    this.#stopRequested = true;
    this.#stopping ??= (async () => {
      log.info(`stopping (exit code ${code})`);
      this.#delivery.cancelTimers();
      await this.#starting?.catch(() => {});
      await this.#provider.stop();
      await this.#delivery.stop();
      this.#status.set("offline");
      await this.#flush(this.#deps.flushTimeoutMs ?? this.config.flushTimeoutMs);
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
    this.#provider.kill();
  }

  async #teardown(): Promise<void> {
    this.#recovery.stop();
    this.#delivery.busDown(false);
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

  // --- Status -----------------------------------------------------------------------------

  #recomputeStatus(): void {
    if (this.#stopRequested) return;
    this.#status.recompute(this.#inbox.turn.phase === "handing");
  }

  #onProviderStatus(status: AgentStatus): void {
    this.#lastProviderEventAt = this.#clock.now();
    this.#status.provider(status);
    this.#recomputeStatus();
  }

  /** The provider, when it runs and can take a turn now. */
  #readyAdapter() {
    const status = this.#status.status;
    // A failed turn leaves the provider in `error`, still able to take the next one.
    const ready = this.#provider.running && (status === "idle" || status === "error");
    return ready ? this.#provider.adapter : undefined;
  }

  #snapshot() {
    return statusSnapshot({
      agentId: this.config.agentId,
      provider: this.config.provider,
      relayUrl: this.config.relayUrl,
      status: this.#status.status,
      providerPid: this.#provider.adapter?.pid,
      startedAt: this.#startedAt,
      version: VERSION,
      outbox: this.#outbox?.stats(),
      obligations: {
        count: this.#obligations.get().length,
        refreshedAt: this.#obligations.refreshedAt,
      },
      bus: this.#bus?.state ?? "idle",
      pendingMessages: this.#inbox.pendingCount,
      subagents: this.#status.subagents,
      lastDeliveryAt: this.#delivery.lastDeliveryAt,
      lastProviderEventAt: this.#lastProviderEventAt,
      sessionId: this.#sessionId,
      sandbox: this.#deps.sandbox,
    }, this.#clock.now());
  }

  #publishOutbox(): void {
    const stats = this.#outbox?.stats();
    if (stats) this.#control?.publish({ type: "outbox", ...stats });
  }

  // --- Provider events --------------------------------------------------------------------

  #onSessionEvent(event: SessionEvent, at: number): void {
    this.#lastProviderEventAt = this.#clock.now();
    applySessionEvent(event, at, {
      events: this.#events,
      delivery: this.#delivery,
      now: () => this.#clock.now(),
      session: (id) => {
        this.#sessionId = id;
        this.#resumeId = id;
        try {
          saveSession(this.config.stateDir, this.config.provider, id);
        } catch (error) {
          log.warn(`saving the session id failed: ${errorText(error)}`);
        }
      },
      turnEnded: (ok, usage) => {
        this.#counters.turns++;
        if (!ok) this.#counters.failedTurns++;
        if (usage) addUsage(this.#usage, usage);
      },
    });
  }

  // --- Bus commands -----------------------------------------------------------------------

  #onCommand(command: BusCommandFrame): Promise<unknown> {
    return runCommand(command, {
      interrupt: async () => {
        // The turn fails for good (a failure reply), and an exit it causes is the runner's own.
        this.#delivery.interrupt();
        await this.#provider.interrupt();
      },
      restart: () =>
        this.#provider.restart(() => {
          // The turn's messages go back in the queue first: the stop may end the turn.
          this.#delivery.failTurn("the provider was restarted", { cause: "restart" });
          this.#status.provider("starting");
          this.#recomputeStatus();
        }),
      exit: () => {
        this.#leaveOnStop = true;
        this.#clock.setTimeout(() => void this.stop(0), 0);
      },
    });
  }
}
