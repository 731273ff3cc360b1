/**
 * The Claude Code provider adapter: runs `claude -p` with stream-json on stdin and stdout.
 *
 * - Spawn: `claude -p --input-format stream-json --output-format stream-json --verbose
 *   --replay-user-messages [--plugin-dir DIR] [--permission-prompt-tool stdio] [--resume ID]
 *   ...args` (claude_args.ts), in the agent's cwd, with the runner's environment (minus
 *   `AGENT_RELAY_TOKEN`) plus `context.env`. The hook plugin is written into
 *   `<stateDir>/claude-plugin` at each start (claude_plugin.ts) unless `plugin: false`.
 * - Ready: `start()` sends the `initialize` control request and resolves on its answer. When
 *   Claude cannot resume the given session (it exits at once: "No conversation found"), the
 *   adapter starts a new session instead (or, with `onResumeFailure: "reject"`, rejects with
 *   {@linkcode ResumeFailedError}), so a dead id can never crash-loop the agent. Any other
 *   failure to become ready rejects with {@linkcode ClaudeStartError}.
 * - Deliver: pending messages become one stream-json user message, each message marked
 *   `[relay message #ID from SENDER]`, the first delivery prefixed with
 *   `context.firstPromptNotes`. The line carries a uuid; Claude echoes it back
 *   (`--replay-user-messages`) when it takes the message in: that is the `consumed` event.
 * - Status: busy from delivery until every delivered message is consumed and the turn's
 *   `result` has arrived; then idle (claude_turns.ts).
 * - Permissions: with the hook plugin loaded, its PermissionRequest hook asks the control server
 *   (`permissionVia: "hook"`); without it, `--permission-prompt-tool stdio` sends `can_use_tool`
 *   control requests here, answered by `context.decidePermission` (claude_control.ts). Never
 *   both, so a question is asked once.
 * - Hooks: `onHook("session-end")` reads the session transcript (its path from the payload, the
 *   SessionStart hook or the stream) and reports a `context_ratio` insight (claude_insight.ts).
 * - Watchdog: no output for `watchdogMs` while busy -> interrupt; still silent (or the interrupt
 *   unanswered) -> kill, reported as an unexpected exit so the runner restarts and resumes.
 * - Stop: close stdin (Claude finishes and exits), SIGTERM after `timeoutMs`, SIGKILL 1 s later;
 *   then wait for an insight still being made.
 *
 * @module
 */
import { settlesWithin, stopChild } from "./child.ts";
import type {
  AdapterContext,
  AdapterEvents,
  AdapterFactory,
  ProviderAdapter,
  SessionEvent,
} from "./adapter.ts";
import type { HookEvent, HookPayload } from "../control/mod.ts";
import type { AgentStatus, Message } from "../types.ts";
import { type ClaudeOutput, decodeLine, encodeUserMessage } from "./claude_stream.ts";
import {
  type BaseEnv,
  buildClaudeArgs,
  CLAUDE_BIN_ENV,
  claudeExecutable,
  claudeSpawnEnv,
  formatDelivery,
  resolveBaseEnv,
} from "./claude_args.ts";
import { ControlChannel } from "./claude_control.ts";
import { ContextRatioReporter } from "./claude_insight.ts";
import { writePlugin } from "./claude_plugin.ts";
import { ClaudeProcess } from "./claude_process.ts";
import { transcriptPathFor } from "./claude_transcript.ts";
import { ClaudeTurns } from "./claude_turns.ts";
import { errorText } from "../util/mod.ts";
import {
  type ClaudeAdapterOptions,
  ClaudeStartError,
  DEFAULT_INTERRUPT_TIMEOUT_MS,
  DEFAULT_PERMISSION_TIMEOUT_MS,
  DEFAULT_START_TIMEOUT_MS,
  DEFAULT_STOP_TIMEOUT_MS,
  DEFAULT_WATCHDOG_MS,
  ResumeFailedError,
} from "./claude_options.ts";

export {
  type ClaudeAdapterOptions,
  ClaudeStartError,
  ResumeFailedError,
} from "./claude_options.ts";

class ClaudeAdapter implements ProviderAdapter {
  readonly #context: AdapterContext;
  readonly #events: AdapterEvents;
  readonly #bin: string;
  readonly #plugin: boolean;
  readonly #interruptTimeoutMs: number;
  readonly #startTimeoutMs: number;
  readonly #stopTimeoutMs: number;
  readonly #permissionVia: "hook" | "stdio";
  readonly #permissionTimeoutMs: number;
  readonly #onResumeFailure: "fresh" | "reject";
  readonly #baseEnv: BaseEnv;
  readonly #now: () => number;
  readonly #turns: ClaudeTurns;

  #process: ClaudeProcess | undefined;
  #control: ControlChannel | undefined;
  /** Settles once the running process's exit has been handled. */
  #exited: Promise<void> | undefined;
  #ready = false;
  #stopping = false;
  /** `stop()` was called since the last `start()`: a start still under way gives up. */
  #stopRequested = false;
  #starting: Promise<void> | undefined;
  #status: AgentStatus | undefined;
  #sessionId: string | undefined;
  #notesDelivered = false;
  #earlyResult: string | undefined;
  #interrupting: Promise<void> | undefined;
  /** The session-end insight: `stop()` waits for one being made. */
  readonly #insights: ContextRatioReporter;

  constructor(context: AdapterContext, events: AdapterEvents, options: ClaudeAdapterOptions) {
    this.#context = context;
    this.#events = events;
    this.#bin = options.bin ?? claudeExecutable();
    this.#plugin = options.plugin ?? true;
    this.#interruptTimeoutMs = options.interruptTimeoutMs ?? DEFAULT_INTERRUPT_TIMEOUT_MS;
    this.#startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    this.#stopTimeoutMs = options.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
    this.#permissionVia = options.permissionVia ?? (this.#plugin ? "hook" : "stdio");
    this.#permissionTimeoutMs = options.permissionTimeoutMs ?? DEFAULT_PERMISSION_TIMEOUT_MS;
    this.#onResumeFailure = options.onResumeFailure ?? "fresh";
    this.#baseEnv = resolveBaseEnv(options.baseEnv);
    this.#now = options.now ?? Date.now;
    this.#insights = new ContextRatioReporter({ emit: (e) => this.#emit(e), log: context.log });
    this.#turns = new ClaudeTurns({
      watchdogMs: options.watchdogMs ?? DEFAULT_WATCHDOG_MS,
      emit: (event) => this.#emit(event),
      status: (status) => this.#setStatus(status),
      diagnostic: (line) => this.#diagnostic(line),
      interrupt: () => void this.interrupt(),
      kill: () => this.#process?.signal("SIGKILL"),
      alive: () => this.#process !== undefined,
      ready: () => this.#ready,
      log: context.log,
    });
  }

  /** Kills the provider at once (the runner's immediate exit). */
  kill(): void {
    this.#process?.signal("SIGKILL");
  }

  get pid(): number | undefined {
    return this.#process?.child.pid;
  }

  // -------------------------------------------------------------------------------------------
  // Start

  start(): Promise<void> {
    if (this.#process || this.#starting) {
      return Promise.reject(new ClaudeStartError("Claude is already running; stop it first"));
    }
    this.#stopRequested = false;
    const starting = this.#start().finally(() => {
      this.#starting = undefined;
    });
    this.#starting = starting;
    return starting;
  }

  async #start(): Promise<void> {
    const ctx = this.#context;
    let pluginDir: string | undefined;
    if (this.#plugin) {
      try {
        pluginDir = await writePlugin(ctx.stateDir, {
          transport: ctx.hookTransport ?? "bash",
          port: Number(ctx.env.AGENT_RELAY_RUNNER_PORT),
        });
      } catch (error) {
        throw new ClaudeStartError(
          `The Claude hook plugin could not be written: ${errorText(error)}`,
        );
      }
    }
    if (this.#stopRequested) throw new ClaudeStartError("Claude was stopped before it started");
    this.#status = undefined;
    this.#setStatus("starting");
    const resumeId = ctx.resumeId;
    const failed = await this.#launch(resumeId, pluginDir);
    if (failed === undefined) return this.#becomeReady();
    if (resumeId === undefined || this.#stopRequested) {
      throw new ClaudeStartError(`Claude could not be started: ${failed}`);
    }
    const message = `Claude could not resume session ${resumeId}: ${failed}`;
    if (this.#onResumeFailure === "reject") throw new ResumeFailedError(resumeId, message);
    ctx.log.warn(`${message}; starting a new session`);
    this.#diagnostic(`${message}; starting a new session`);
    const again = await this.#launch(undefined, pluginDir);
    if (again === undefined) return this.#becomeReady();
    throw new ClaudeStartError(`Claude could not be started: ${again}`);
  }

  #becomeReady(): void {
    this.#ready = true;
    this.#context.log.info(`Claude is ready (pid ${this.pid})`);
    this.#setStatus("idle");
  }

  /**
   * Spawns Claude and waits for its answer to `initialize`. Resolves `undefined` when it is
   * ready, else with why not (the process is gone by then). Throws when it cannot be spawned.
   */
  async #launch(
    resumeId: string | undefined,
    pluginDir: string | undefined,
  ): Promise<string | undefined> {
    const ctx = this.#context;
    if (this.#stopRequested) return "it was stopped before it started";
    this.#ready = false;
    this.#stopping = false;
    this.#earlyResult = undefined;
    this.#turns.reset();
    const args = buildClaudeArgs(
      {
        args: ctx.args,
        ...(pluginDir ? { pluginDir } : {}),
        ...(resumeId ? { resumeId } : {}),
      },
      { permissionVia: this.#permissionVia },
    );
    ctx.log.info(
      `starting ${this.#bin} in ${ctx.cwd}${resumeId ? ` resuming session ${resumeId}` : ""}` +
        ` (permissions via ${this.#permissionVia})`,
    );
    let child: Deno.ChildProcess;
    try {
      child = ctx.spawn(this.#bin, {
        args,
        cwd: ctx.cwd,
        ...claudeSpawnEnv(this.#baseEnv, ctx.env),
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      });
    } catch (error) {
      throw new ClaudeStartError(
        `Claude executable "${this.#bin}" could not be started: ${errorText(error)}` +
          ` (set ${CLAUDE_BIN_ENV} to its path)`,
      );
    }
    const process = new ClaudeProcess(child, {
      line: (line) => this.#onLine(line),
      diagnostic: (line) => this.#diagnostic(line),
    });
    const control = new ControlChannel({
      write: (line) => process.write(line),
      decidePermission: ctx.decidePermission,
      permissionTimeoutMs: this.#permissionTimeoutMs,
      log: ctx.log,
    });
    this.#process = process;
    this.#control = control;
    const exitedPromise = process.exited.then((status) => this.#onExit(process, status));
    this.#exited = exitedPromise;

    const outcome = await control.initialize(exitedPromise, this.#startTimeoutMs);
    if (outcome === "ready" && this.#process === process && !this.#stopRequested) return undefined;
    // Not ready (or stopped meanwhile): make sure it is gone, then explain.
    process.signal("SIGKILL");
    await exitedPromise;
    const why = this.#stopRequested
      ? "it was stopped before it was ready"
      : outcome === "timeout"
      ? `it did not answer initialize within ${this.#startTimeoutMs} ms`
      : outcome instanceof Error
      ? outcome.message
      : "it exited before it was ready";
    const tail = process.stderrTail;
    const early = this.#earlyResult ? ` (result: ${this.#earlyResult})` : "";
    return `${why}${early}${tail ? ` (stderr: ${tail})` : ""}`;
  }

  #onExit(process: ClaudeProcess, status: Deno.CommandStatus): void {
    this.#turns.clearWatchdog();
    const wasReady = this.#ready;
    const expected = this.#stopping || this.#stopRequested;
    this.#ready = false;
    if (this.#process === process) this.#process = undefined;
    this.#control?.failAll(new Error("Claude exited before answering"));
    const unconsumed = this.#turns.dropAll();
    this.#context.log.log(
      expected ? "info" : "warn",
      `Claude exited (code ${status.code}, signal ${status.signal ?? "none"})` +
        (unconsumed.length ? `; messages ${unconsumed.join(", ")} were never consumed` : ""),
    );
    if (!wasReady) return; // start() reports it
    try {
      this.#events.exit({ code: status.code, signal: status.signal, expected });
    } catch (error) {
      this.#context.log.error(`exit callback threw: ${errorText(error)}`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Deliver, interrupt, stop

  async deliver(messages: Message[]): Promise<void> {
    const process = this.#process;
    if (!this.#ready || !process) {
      throw new Error(
        `Claude is not running; messages ${
          messages.map((m) => m.id).join(", ")
        } were not delivered`,
      );
    }
    if (messages.length === 0) return;
    const ids = messages.map((m) => m.id);
    const withNotes = !this.#notesDelivered;
    this.#notesDelivered = true;
    const text = formatDelivery(messages, withNotes ? this.#context.firstPromptNotes : undefined);
    const uuid = crypto.randomUUID();
    this.#turns.delivered(uuid, ids);
    try {
      await process.write(encodeUserMessage(text, uuid));
    } catch (error) {
      this.#turns.undeliver(uuid);
      if (withNotes) this.#notesDelivered = false;
      throw new Error(
        `Messages ${ids.join(", ")} could not be handed to Claude: ${errorText(error)}`,
      );
    }
    this.#context.log.debug(`delivered messages ${ids.join(", ")} to Claude as ${uuid}`);
  }

  interrupt(): Promise<void> {
    if (!this.#ready || !this.#process || !this.#turns.busy) return Promise.resolve();
    this.#interrupting ??= this.#doInterrupt().finally(() => {
      this.#interrupting = undefined;
    });
    return this.#interrupting;
  }

  async #doInterrupt(): Promise<void> {
    const process = this.#process;
    const control = this.#control;
    if (!process || !control) return;
    this.#context.log.info("interrupting Claude's turn");
    let ok = false;
    const answered = control.request({ subtype: "interrupt" }).then(() => {
      ok = true;
    }, () => {});
    await settlesWithin(answered, this.#interruptTimeoutMs);
    if (!ok && this.#process === process) {
      this.#diagnostic(
        `Claude did not answer the interrupt within ${this.#interruptTimeoutMs} ms; killing it`,
      );
      process.signal("SIGKILL");
    }
  }

  async stop(options: { timeoutMs?: number } = {}): Promise<void> {
    this.#stopRequested = true;
    const process = this.#process;
    const exited = this.#exited;
    if (process && exited) {
      this.#stopping = true;
      this.#turns.clearWatchdog();
      const timeoutMs = options.timeoutMs ?? this.#stopTimeoutMs;
      const log = this.#context.log;
      await stopChild(process.child, exited, {
        closeStdin: () => process.closeStdin(),
        graceMs: timeoutMs,
        termGraceMs: 1000,
        onSignal: (signal) =>
          log.warn(
            signal === "SIGTERM"
              ? `Claude did not exit within ${timeoutMs} ms of closing stdin; SIGTERM`
              : "Claude did not exit after SIGTERM; SIGKILL",
          ),
      });
    }
    // A start still under way gives up (it sees the stop) and its process is gone with it.
    if (this.#starting) await this.#starting.catch(() => {});
    await this.#insights.settled();
  }

  /** The SessionStart hook tells the transcript path; SessionEnd makes the insight. */
  onHook(event: HookEvent, payload: HookPayload): void {
    this.#insights.onHook(event, payload);
  }

  // -------------------------------------------------------------------------------------------
  // Output

  #onLine(line: string): void {
    this.#turns.activity();
    for (const output of decodeLine(line)) {
      try {
        this.#onOutput(output);
      } catch (error) {
        this.#context.log.error(`handling Claude output failed: ${errorText(error)}`);
      }
    }
  }

  #onOutput(output: ClaudeOutput): void {
    switch (output.kind) {
      case "init":
        this.#turns.turnStarted();
        this.#onInit(output);
        break;
      case "result":
        if (!this.#ready) {
          // Before the initialize answer (a failed resume): start() reports it, not a turn.
          this.#earlyResult = output.error ?? output.subtype;
          break;
        }
        this.#turns.take(output);
        break;
      case "control-request":
      case "control-response":
      case "control-cancel":
        this.#control?.receive(output);
        break;
      case "invalid":
        this.#diagnostic(`${output.error}: ${output.line}`);
        break;
      case "other":
        this.#context.log.debug(`ignored Claude output of type ${output.type}`);
        break;
      default:
        this.#turns.take(output);
    }
  }

  #onInit(init: ClaudeOutput & { kind: "init" }): void {
    if (init.sessionId !== this.#sessionId) {
      this.#sessionId = init.sessionId;
      this.#emit({ type: "session-id", id: init.sessionId });
    }
    const path = init.projectDir !== undefined
      ? `${init.projectDir}/${init.sessionId}.jsonl`
      : transcriptPathFor(init.cwd ?? this.#context.cwd, init.sessionId, {
        HOME: this.#context.env.HOME ?? this.#baseEnv.vars.HOME,
        CLAUDE_CONFIG_DIR: this.#context.env.CLAUDE_CONFIG_DIR ??
          this.#baseEnv.vars.CLAUDE_CONFIG_DIR,
      });
    if (path !== undefined) this.#insights.learnPath(path);
  }

  // -------------------------------------------------------------------------------------------
  // Reporting

  #setStatus(status: AgentStatus): void {
    if (status === this.#status) return;
    this.#status = status;
    try {
      this.#events.status(status);
    } catch (error) {
      this.#context.log.error(`status callback threw: ${errorText(error)}`);
    }
  }

  #emit(event: SessionEvent): void {
    try {
      this.#events.event(event, this.#now());
    } catch (error) {
      this.#context.log.error(`event callback threw: ${errorText(error)}`);
    }
  }

  #diagnostic(line: string): void {
    this.#context.log.debug(`claude: ${line}`);
    try {
      this.#events.diagnostic?.(line);
    } catch { /* never throw from a callback */ }
  }
}

/** Builds a Claude Code adapter with options beyond the {@linkcode AdapterFactory} signature. */
export function createClaudeAdapter(
  context: AdapterContext,
  events: AdapterEvents,
  options: ClaudeAdapterOptions = {},
): ProviderAdapter {
  return new ClaudeAdapter(context, events, options);
}

/** The Claude Code {@linkcode AdapterFactory} with default options. */
export const claudeAdapter: AdapterFactory = (context, events) =>
  createClaudeAdapter(context, events);
