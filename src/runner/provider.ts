/**
 * Provider supervision: starts the provider through its adapter, restarts it after an unexpected
 * exit as the {@linkcode RestartPolicy} says (or gives up), and runs every start, stop and
 * restart one at a time. Events of a replaced adapter are ignored.
 *
 * @module
 */
import {
  type AdapterContext,
  type AdapterEvents,
  type AdapterFactory,
  adapterFor,
  type ProviderAdapter,
  type SessionEvent,
  type Spawner,
} from "../adapters/mod.ts";
import type { RunConfig } from "../config/mod.ts";
import type { PermissionDecider } from "../control/mod.ts";
import { getLogger } from "../logger.ts";
import type { AgentStatus } from "../types.ts";
import { type Clock, errorText, type TimerId } from "../util/mod.ts";
import type { RestartDecision, RestartPolicy } from "./restart_policy.ts";

const log = getLogger("runner");

/** An exit this soon after an interrupt is the interrupt's doing. */
export const INTERRUPT_EXIT_MS = 5_000;

/** How the provider ended. */
export interface ExitInfo {
  code: number | null;
  signal: string | null;
  expected: boolean;
}

/** What the supervisor needs and tells. */
export interface SupervisorDeps {
  config: RunConfig;
  clock: Clock;
  restart: RestartPolicy;
  spawn: Spawner;
  decide: PermissionDecider;
  /** Builds the adapter; default by `config.provider`. */
  factory?: AdapterFactory;
  /** How long a stop waits for the provider. */
  stopTimeoutMs: number;
  /** The environment the provider gets on top of the runner's (control port and secret...). */
  env(): Record<string, string>;
  /** The session id to resume, if any. */
  resumeId(): string | undefined;
  /** The first-prompt notes. */
  notes: string;
  stopping(): boolean;
  status(status: AgentStatus): void;
  event(event: SessionEvent, at: number): void;
  /**
   * The provider exited unexpectedly, or because of an interrupt (`byInterrupt`: restarted at
   * once, never counted): its turn is void. `decision` says what happens next.
   */
  crashed(
    info: ExitInfo & { byInterrupt: boolean },
    runtimeMs: number,
    decision: RestartDecision,
  ): void;
}

/** Starts, restarts and stops the provider; see the module doc. */
export class ProviderSupervisor {
  readonly #d: SupervisorDeps;
  #adapter: ProviderAdapter | undefined;
  #running = false;
  #startedAt = 0;
  #generation = 0;
  #restarts = 0;
  /** When the runner last interrupted the provider: an exit soon after is its doing. */
  #interruptedAt: number | undefined;
  #restartTimer: TimerId | undefined;
  /** Starts, stops and restarts run one at a time, in this chain. */
  #chain: Promise<void> = Promise.resolve();

  constructor(deps: SupervisorDeps) {
    this.#d = deps;
  }

  /** The current adapter. */
  get adapter(): ProviderAdapter | undefined {
    return this.#adapter;
  }

  /** Whether the provider runs now. */
  get running(): boolean {
    return this.#running;
  }

  /** Restarts after unexpected exits so far. */
  get restarts(): number {
    return this.#restarts;
  }

  /** Starts the provider (after any operation under way); rejects when it cannot start. */
  start(): Promise<void> {
    return this.#serial(() => this.#spawn());
  }

  /** Stops the provider and starts it again (the bus `restart` command). */
  restart(before: () => void): Promise<void> {
    return this.#serial(async () => {
      this.#d.clock.clearTimeout(this.#restartTimer);
      before();
      await this.#adapter?.stop({ timeoutMs: this.#d.stopTimeoutMs });
      await this.#respawn();
    });
  }

  /** Stops the provider for good (after any operation under way). */
  async stop(): Promise<void> {
    this.#d.clock.clearTimeout(this.#restartTimer);
    await this.#serial(async () => {
      try {
        await this.#adapter?.stop({ timeoutMs: this.#d.stopTimeoutMs });
      } catch (error) {
        log.warn(`stopping the provider failed: ${errorText(error)}`);
      }
    }).catch(() => {});
  }

  /**
   * Interrupts the provider's turn (the bus `interrupt` command). If the provider exits because
   * of it, it is started again at once and the exit does not count towards giving up.
   */
  async interrupt(): Promise<void> {
    if (!this.#adapter || !this.#running) return;
    this.#interruptedAt = this.#d.clock.now();
    await this.#adapter.interrupt();
  }

  /** For an immediate exit: kills the provider now, without waiting for anything. */
  kill(): void {
    try {
      this.#adapter?.kill?.();
    } catch {
      // Already gone.
    }
  }

  #serial(op: () => Promise<void>): Promise<void> {
    const next = this.#chain.then(op);
    this.#chain = next.catch(() => {});
    return next;
  }

  async #spawn(): Promise<void> {
    if (this.#d.stopping() || this.#running) return;
    const c = this.#d.config;
    const factory = this.#d.factory ?? await adapterFor(c.provider);
    const resumeId = this.#d.resumeId();
    const context: AdapterContext = {
      agentId: c.agentId,
      provider: c.provider,
      cwd: c.cwd,
      stateDir: c.stateDir,
      args: c.providerArgs,
      env: this.#d.env(),
      ...(resumeId ? { resumeId } : {}),
      firstPromptNotes: this.#d.notes,
      permissionPolicy: c.permissionPolicy,
      hookTransport: c.hooks,
      decidePermission: this.#d.decide,
      spawn: this.#d.spawn,
      log: getLogger(c.provider),
    };
    const generation = ++this.#generation;
    const current = () => generation === this.#generation;
    const events: AdapterEvents = {
      status: (status) => current() && this.#d.status(status),
      event: (event, at) => current() && this.#d.event(event, at),
      exit: (info) => current() && this.#exited(info),
      diagnostic: (line) => getLogger(c.provider).warn(`stderr: ${line}`),
    };
    const adapter = factory(context, events);
    this.#adapter = adapter;
    this.#interruptedAt = undefined;
    this.#startedAt = this.#d.clock.now();
    this.#running = true;
    try {
      await adapter.start();
    } catch (error) {
      if (current()) this.#running = false;
      throw error;
    }
    log.info(`${c.provider} started (pid ${adapter.pid ?? "?"})`);
    if (this.#d.stopping()) {
      await adapter.stop({ timeoutMs: this.#d.stopTimeoutMs }).catch(() => {});
    }
  }

  /** A (re)start that failed counts as an unexpected exit: the restart policy decides. */
  async #respawn(): Promise<void> {
    try {
      await this.#spawn();
    } catch (error) {
      log.error(`starting the provider failed: ${errorText(error)}`);
      this.#exited({ code: null, signal: null, expected: false });
    }
  }

  #exited(info: ExitInfo): void {
    this.#running = false;
    if (info.expected || this.#d.stopping()) return;
    const now = this.#d.clock.now();
    const runtimeMs = now - this.#startedAt;
    // An exit the runner caused (an interrupt) is restarted at once and never counts.
    const caused = this.#interruptedAt !== undefined &&
      now - this.#interruptedAt < INTERRUPT_EXIT_MS;
    const decision: RestartDecision = caused
      ? { action: "restart", delayMs: 0, recentExits: 0 }
      : this.#d.restart.onExit(now, runtimeMs);
    this.#d.crashed({ ...info, byInterrupt: caused }, runtimeMs, decision);
    if (decision.action === "give-up") return;
    this.#d.clock.clearTimeout(this.#restartTimer);
    this.#restartTimer = this.#d.clock.setTimeout(() => {
      this.#restarts++;
      void this.#serial(() => this.#respawn());
    }, decision.delayMs);
  }
}
