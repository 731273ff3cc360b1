/**
 * The Claude Code provider adapter: runs `claude -p` with stream-json on stdin and stdout.
 *
 * - Spawn: `claude -p --input-format stream-json --output-format stream-json --verbose
 *   --replay-user-messages [--plugin-dir DIR] [--permission-prompt-tool stdio] [--resume ID]
 *   ...args`, in the agent's cwd, with the runner's environment (minus `AGENT_RELAY_TOKEN`) plus
 *   `context.env`. The executable is {@linkcode claudeExecutable}: `$AGENT_RELAY_CLAUDE_BIN` or
 *   `claude` on PATH.
 * - Ready: `start()` sends the `initialize` control request and resolves on its answer. When
 *   Claude cannot resume the given session (it exits at once: "No conversation found"), the
 *   adapter starts a new session instead (or, with `onResumeFailure: "reject"`, rejects with
 *   {@linkcode ResumeFailedError}), so a dead id can never crash-loop the agent. Any other
 *   failure to become ready rejects with {@linkcode ClaudeStartError}.
 * - Deliver: pending messages become one stream-json user message, each message marked
 *   `[relay message #ID from SENDER]` (`formatRelayMessage`), the first delivery prefixed with
 *   `context.firstPromptNotes`. The line carries a uuid; Claude echoes it back
 *   (`--replay-user-messages`) when it takes the message in: that is the `consumed` event.
 * - Status: busy from delivery until every delivered message is consumed and the turn's
 *   `result` has arrived; then idle.
 * - Permissions: with the hook plugin loaded, its PermissionRequest hook asks the control server
 *   (`permissionVia: "hook"`); without it, `--permission-prompt-tool stdio` sends `can_use_tool`
 *   control requests here, answered by `context.decidePermission`. Never both, so a question is
 *   asked once.
 * - Watchdog: no output for `watchdogMs` while busy → interrupt; still silent (or the interrupt
 *   unanswered) → kill, reported as an unexpected exit so the runner restarts and resumes.
 * - Stop: close stdin (Claude finishes and exits), SIGTERM after `timeoutMs`, SIGKILL 1 s later.
 *
 * @module
 */
import { settlesWithin, signalChild } from "./child.ts";
import type {
  AdapterContext,
  AdapterEvents,
  AdapterFactory,
  ProviderAdapter,
  SessionEvent,
} from "./adapter.ts";
import type { AgentStatus, Message, PermissionDecision } from "../types.ts";
import {
  type ClaudeOutput,
  decodeLine,
  encodeControlError,
  encodeControlRequest,
  encodeControlResponse,
  encodeUserMessage,
  LineSplitter,
  StreamTranslator,
} from "./claude_stream.ts";
import { transcriptPathFor } from "./claude_transcript.ts";
import { formatRelayMessage } from "./relay_instructions.ts";
import { readEnv } from "../config/mod.ts";

/** The environment variable naming the Claude Code executable. */
export const CLAUDE_BIN_ENV = "AGENT_RELAY_CLAUDE_BIN";

/** Variables of the runner's environment never passed to Claude. */
export const STRIPPED_ENV: ReadonlySet<string> = new Set(["AGENT_RELAY_TOKEN", "CLAUDECODE"]);

/** Default: no output for this long while busy → interrupt. */
export const DEFAULT_WATCHDOG_MS = 10 * 60_000;
/** Default: an interrupt unanswered for this long → kill. */
export const DEFAULT_INTERRUPT_TIMEOUT_MS = 15_000;
/** Default: `start()` gives up after this long without an answer to `initialize`. */
export const DEFAULT_START_TIMEOUT_MS = 60_000;
/** Default: `stop()` waits this long after closing stdin before signalling. */
export const DEFAULT_STOP_TIMEOUT_MS = 10_000;
/** Default: a stdio permission question is denied after this long. */
export const DEFAULT_PERMISSION_TIMEOUT_MS = 120_000;

/** The Claude Code executable: `$AGENT_RELAY_CLAUDE_BIN` when set, else `claude` (on PATH). */
export function claudeExecutable(
  getEnv: (name: string) => string | undefined = (name) => Deno.env.get(name),
): string {
  const bin = getEnv(CLAUDE_BIN_ENV)?.trim();
  return bin ? bin : "claude";
}

/** Options of {@linkcode createClaudeAdapter}. */
export interface ClaudeAdapterOptions {
  /** The executable (default {@linkcode claudeExecutable}). */
  bin?: string;
  /** No output for this long while busy → interrupt (0 = never). */
  watchdogMs?: number;
  interruptTimeoutMs?: number;
  startTimeoutMs?: number;
  /** Default for `stop()` without a timeout. */
  stopTimeoutMs?: number;
  /**
   * Who answers tool-permission questions: the plugin's hook (`hook`, the default when
   * `context.pluginDir` is set) or this adapter over stdio (`stdio`, the default otherwise).
   */
  permissionVia?: "hook" | "stdio";
  permissionTimeoutMs?: number;
  /**
   * When the saved session cannot be resumed: start a new session (`fresh`, the default; the
   * new session's id follows as a `session-id` event), or reject `start()` with
   * {@linkcode ResumeFailedError} (`reject`).
   */
  onResumeFailure?: "fresh" | "reject";
  /** The environment the provider inherits (default: the runner's). */
  baseEnv?: Record<string, string | undefined>;
  /** The clock for event times. */
  now?: () => number;
}

/** Claude could not be started, or died before it was ready. */
export class ClaudeStartError extends Error {
  override name = "ClaudeStartError";
}

/** Claude could not resume the saved session (`onResumeFailure: "reject"`): drop the id. */
export class ResumeFailedError extends ClaudeStartError {
  override name = "ResumeFailedError";
  constructor(readonly resumeId: string, message: string) {
    super(message);
  }
}

/** The command-line arguments for a context (the executable not included). */
export function buildClaudeArgs(
  context: Pick<AdapterContext, "pluginDir" | "resumeId" | "args">,
  options: { permissionVia: "hook" | "stdio" },
): string[] {
  const args = [
    "-p",
    "--input-format",
    "stream-json",
    "--output-format",
    "stream-json",
    "--verbose",
    "--replay-user-messages",
  ];
  if (context.pluginDir) args.push("--plugin-dir", context.pluginDir);
  if (options.permissionVia === "stdio") args.push("--permission-prompt-tool", "stdio");
  if (context.resumeId) args.push("--resume", context.resumeId);
  args.push(...context.args);
  return args;
}

/** The provider's environment: the base minus {@linkcode STRIPPED_ENV}, plus `extra`. */
export function claudeEnv(
  base: Record<string, string | undefined>,
  extra: Record<string, string>,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(base)) {
    if (value !== undefined && !STRIPPED_ENV.has(key)) env[key] = value;
  }
  return Object.assign(env, extra);
}

/**
 * The text of one delivery: `notes` (if any), then each message as
 * {@linkcode formatRelayMessage} shows it (`[relay message #12 from alice]` and the body, the
 * form the first-prompt notes announce), separated by blank lines.
 */
export function formatDelivery(messages: Message[], notes?: string): string {
  const parts: string[] = [];
  if (notes !== undefined && notes.trim() !== "") parts.push(notes.trim());
  for (const m of messages) parts.push(formatRelayMessage(m));
  return parts.join("\n\n");
}

interface ControlAnswer {
  ok: boolean;
  response?: unknown;
  error?: string;
}

interface PendingControl {
  resolve(answer: ControlAnswer): void;
  reject(error: Error): void;
}

const STDERR_TAIL_LINES = 20;

class ClaudeAdapter implements ProviderAdapter {
  readonly #context: AdapterContext;
  readonly #events: AdapterEvents;
  readonly #bin: string;
  readonly #watchdogMs: number;
  readonly #interruptTimeoutMs: number;
  readonly #startTimeoutMs: number;
  readonly #stopTimeoutMs: number;
  readonly #permissionVia: "hook" | "stdio";
  readonly #permissionTimeoutMs: number;
  readonly #onResumeFailure: "fresh" | "reject";
  readonly #baseEnv: Record<string, string | undefined>;
  /** Whether Claude inherits the runner's environment instead of getting `#baseEnv` only. */
  #inheritEnv = false;
  readonly #now: () => number;
  readonly #encoder = new TextEncoder();

  #child: Deno.ChildProcess | undefined;
  #writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  #stdoutReader: ReadableStreamDefaultReader<string> | undefined;
  #stderrReader: ReadableStreamDefaultReader<string> | undefined;
  #exited: Promise<void> | undefined;
  #ready = false;
  #stopping = false;
  #status: AgentStatus | undefined;
  #translator = new StreamTranslator();
  /** Delivered, not yet consumed: uuid → message ids, in delivery order. */
  #unconsumed = new Map<string, number[]>();
  #inTurn = false;
  #controls = new Map<string, PendingControl>();
  #cancelled = new Set<string>();
  #sessionId: string | undefined;
  #transcripts = new Set<string>();
  #notesDelivered = false;
  #stderrTail: string[] = [];
  #earlyResult: string | undefined;
  #watchdog: ReturnType<typeof setTimeout> | undefined;
  #watchdogFired = false;
  #interrupting: Promise<void> | undefined;

  constructor(context: AdapterContext, events: AdapterEvents, options: ClaudeAdapterOptions) {
    this.#context = context;
    this.#events = events;
    this.#bin = options.bin ?? claudeExecutable();
    this.#watchdogMs = options.watchdogMs ?? DEFAULT_WATCHDOG_MS;
    this.#interruptTimeoutMs = options.interruptTimeoutMs ?? DEFAULT_INTERRUPT_TIMEOUT_MS;
    this.#startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    this.#stopTimeoutMs = options.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
    this.#permissionVia = options.permissionVia ?? (context.pluginDir ? "hook" : "stdio");
    this.#permissionTimeoutMs = options.permissionTimeoutMs ?? DEFAULT_PERMISSION_TIMEOUT_MS;
    this.#onResumeFailure = options.onResumeFailure ?? "fresh";
    if (options.baseEnv !== undefined) {
      this.#baseEnv = options.baseEnv;
    } else {
      try {
        this.#baseEnv = Deno.env.toObject();
      } catch {
        // Under the runner's sandbox only some variables may be read: then Claude inherits the
        // environment as it is (no permission needed), with the stripped ones blanked.
        this.#baseEnv = readEnv();
        this.#inheritEnv = true;
      }
    }
    this.#now = options.now ?? Date.now;
  }

  /** Kills the provider at once (the runner's immediate exit). */
  kill(): void {
    if (this.#child) signalChild(this.#child, "SIGKILL");
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  // -------------------------------------------------------------------------------------------
  // ProviderAdapter

  async start(): Promise<void> {
    if (this.#child) throw new ClaudeStartError("Claude is already running; stop it first");
    const ctx = this.#context;
    this.#status = undefined;
    this.#setStatus("starting");
    const resumeId = ctx.resumeId;
    const failed = await this.#launch(resumeId);
    if (failed === undefined) return this.#becomeReady();
    if (resumeId === undefined) {
      throw new ClaudeStartError(`Claude could not be started: ${failed}`);
    }
    const message = `Claude could not resume session ${resumeId}: ${failed}`;
    if (this.#onResumeFailure === "reject") throw new ResumeFailedError(resumeId, message);
    ctx.log.warn(`${message}; starting a new session`);
    this.#diagnostic(`${message}; starting a new session`);
    const again = await this.#launch(undefined);
    if (again === undefined) return this.#becomeReady();
    throw new ClaudeStartError(`Claude could not be started: ${again}`);
  }

  #becomeReady(): void {
    this.#ready = true;
    this.#context.log.info(`Claude is ready (pid ${this.#child?.pid})`);
    this.#setStatus("idle");
  }

  /**
   * Spawns Claude and waits for its answer to `initialize`. Resolves `undefined` when it is
   * ready, else with why not (the process is gone by then). Throws when it cannot be spawned.
   */
  async #launch(resumeId: string | undefined): Promise<string | undefined> {
    const ctx = this.#context;
    this.#reset();
    const args = buildClaudeArgs(
      {
        args: ctx.args,
        ...(ctx.pluginDir ? { pluginDir: ctx.pluginDir } : {}),
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
        env: this.#inheritEnv
          ? { ...Object.fromEntries([...STRIPPED_ENV].map((k) => [k, ""])), ...ctx.env }
          : claudeEnv(this.#baseEnv, ctx.env),
        clearEnv: !this.#inheritEnv,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      });
    } catch (error) {
      throw new ClaudeStartError(
        `Claude executable "${this.#bin}" could not be started: ${messageOf(error)}` +
          ` (set ${CLAUDE_BIN_ENV} to its path)`,
      );
    }
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.#writer.closed.catch(() => {});
    const stdoutDone = this.#readStdout(child);
    const stderrDone = this.#readStderr(child);
    const exitedPromise = this.#watchExit(child, stdoutDone, stderrDone);
    this.#exited = exitedPromise;

    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), this.#startTimeoutMs);
    });
    const exited = exitedPromise.then(() => "exited" as const);
    let outcome: "ready" | "timeout" | "exited" | Error;
    try {
      const answer = this.#control({ subtype: "initialize" });
      answer.catch(() => {});
      outcome = await Promise.race([
        answer.then((a) => a.ok ? "ready" as const : new Error(a.error ?? "initialize failed")),
        timeout,
        exited,
      ]).catch((error) => error instanceof Error ? error : new Error(String(error)));
    } finally {
      clearTimeout(timer);
    }
    if (outcome === "ready" && this.#child === child) return undefined;
    // Not ready: make sure it is gone, then explain.
    signalChild(child, "SIGKILL");
    await exitedPromise;
    const why = outcome === "timeout"
      ? `it did not answer initialize within ${this.#startTimeoutMs} ms`
      : outcome instanceof Error
      ? outcome.message
      : "it exited before it was ready";
    const tail = this.#stderrTail.join(" | ");
    const early = this.#earlyResult ? ` (result: ${this.#earlyResult})` : "";
    return `${why}${early}${tail ? ` (stderr: ${tail})` : ""}`;
  }

  async deliver(messages: Message[]): Promise<void> {
    if (!this.#ready || !this.#child) {
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
    this.#unconsumed.set(uuid, ids);
    this.#updateStatus();
    try {
      await this.#write(encodeUserMessage(text, uuid));
    } catch (error) {
      this.#unconsumed.delete(uuid);
      if (withNotes) this.#notesDelivered = false;
      this.#updateStatus();
      throw new Error(
        `Messages ${ids.join(", ")} could not be handed to Claude: ${messageOf(error)}`,
      );
    }
    this.#context.log.debug(`delivered messages ${ids.join(", ")} to Claude as ${uuid}`);
  }

  interrupt(): Promise<void> {
    if (!this.#ready || !this.#child || !this.#busy()) return Promise.resolve();
    this.#interrupting ??= this.#doInterrupt().finally(() => {
      this.#interrupting = undefined;
    });
    return this.#interrupting;
  }

  async stop(options: { timeoutMs?: number } = {}): Promise<void> {
    const child = this.#child;
    if (!child || !this.#exited) return;
    const exited = this.#exited;
    this.#stopping = true;
    this.#clearWatchdog();
    const timeoutMs = options.timeoutMs ?? this.#stopTimeoutMs;
    // Not awaited: a close waits for pending writes, which never finish if Claude stopped
    // reading; the signals below must not wait on it.
    void this.#writer?.close().catch(() => {/* stdin already closed */});
    if (await settlesWithin(exited, timeoutMs)) return;
    this.#context.log.warn(`Claude did not exit within ${timeoutMs} ms of closing stdin; SIGTERM`);
    signalChild(child, "SIGTERM");
    if (await settlesWithin(exited, 1000)) return;
    this.#context.log.warn("Claude did not exit after SIGTERM; SIGKILL");
    signalChild(child, "SIGKILL");
    await exited;
  }

  // -------------------------------------------------------------------------------------------
  // Process plumbing

  #reset(): void {
    this.#ready = false;
    this.#stopping = false;
    this.#translator = new StreamTranslator();
    this.#unconsumed.clear();
    this.#inTurn = false;
    this.#controls.clear();
    this.#cancelled.clear();
    this.#stderrTail = [];
    this.#earlyResult = undefined;
    this.#watchdogFired = false;
  }

  async #write(line: string): Promise<void> {
    const writer = this.#writer;
    if (!writer) throw new Error("Claude's stdin is closed");
    await writer.write(this.#encoder.encode(line));
  }

  #control(request: Record<string, unknown>): Promise<ControlAnswer> {
    const id = `${request.subtype}-${crypto.randomUUID()}`;
    return new Promise<ControlAnswer>((resolve, reject) => {
      this.#controls.set(id, { resolve, reject });
      this.#write(encodeControlRequest(id, request)).catch((error) => {
        this.#controls.delete(id);
        reject(new Error(`Could not send ${request.subtype} to Claude: ${messageOf(error)}`));
      });
    });
  }

  async #readStdout(child: Deno.ChildProcess): Promise<void> {
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    this.#stdoutReader = reader;
    const splitter = new LineSplitter();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const { lines, dropped } = splitter.push(value);
        if (dropped > 0) this.#diagnostic(`dropped ${dropped} overlong stdout line(s)`);
        for (const line of lines) this.#onLine(line);
      }
      const rest = splitter.flush();
      if (rest !== undefined) this.#onLine(rest);
    } catch (error) {
      this.#diagnostic(`stdout read failed: ${messageOf(error)}`);
    } finally {
      reader.releaseLock();
    }
  }

  async #readStderr(child: Deno.ChildProcess): Promise<void> {
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    this.#stderrReader = reader;
    const splitter = new LineSplitter({ maxChars: 64 * 1024 });
    const take = (line: string) => {
      const trimmed = line.trim();
      if (trimmed === "") return;
      this.#stderrTail.push(trimmed.slice(0, 500));
      if (this.#stderrTail.length > STDERR_TAIL_LINES) this.#stderrTail.shift();
      this.#diagnostic(trimmed);
    };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const line of splitter.push(value).lines) take(line);
      }
      const rest = splitter.flush();
      if (rest !== undefined) take(rest);
    } catch (error) {
      this.#diagnostic(`stderr read failed: ${messageOf(error)}`);
    } finally {
      reader.releaseLock();
    }
  }

  async #watchExit(
    child: Deno.ChildProcess,
    stdoutDone: Promise<void>,
    stderrDone: Promise<void>,
  ): Promise<void> {
    const status = await child.status;
    // Output still in the pipes is handled before the exit is reported; a grandchild holding
    // the pipes open must not keep us waiting.
    const drained = Promise.all([stdoutDone, stderrDone]);
    if (!await settlesWithin(drained, 2000)) {
      await this.#stdoutReader?.cancel().catch(() => {});
      await this.#stderrReader?.cancel().catch(() => {});
      await drained;
    }
    this.#clearWatchdog();
    const wasReady = this.#ready;
    const expected = this.#stopping;
    this.#ready = false;
    this.#child = undefined;
    await this.#writer?.abort().catch(() => {}); // releases stdin after a crash
    this.#writer = undefined;
    for (const pending of this.#controls.values()) {
      pending.reject(new Error("Claude exited before answering"));
    }
    this.#controls.clear();
    const unconsumed = [...this.#unconsumed.values()].flat();
    this.#unconsumed.clear();
    this.#inTurn = false;
    this.#context.log.log(
      expected ? "info" : "warn",
      `Claude exited (code ${status.code}, signal ${status.signal ?? "none"})` +
        (unconsumed.length ? `; messages ${unconsumed.join(", ")} were never consumed` : ""),
    );
    if (!wasReady) return; // start() reports it
    try {
      this.#events.exit({ code: status.code, signal: status.signal, expected });
    } catch (error) {
      this.#context.log.error(`exit callback threw: ${messageOf(error)}`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Output handling

  #onLine(line: string): void {
    if (this.#busy()) this.#armWatchdog();
    for (const output of decodeLine(line)) {
      try {
        this.#onOutput(output);
      } catch (error) {
        this.#context.log.error(`handling Claude output failed: ${messageOf(error)}`);
      }
    }
  }

  #onOutput(output: ClaudeOutput): void {
    switch (output.kind) {
      case "init":
        this.#inTurn = true;
        this.#onInit(output);
        break;
      case "replay":
        this.#consume(output.uuid, "replay");
        this.#inTurn = true;
        break;
      case "lifecycle":
        if (output.state === "started") this.#consume(output.commandUuid, "lifecycle");
        else if (output.state === "cancelled") this.#cancelDelivery(output.commandUuid);
        break;
      case "result":
        if (!this.#ready) {
          // Before the initialize answer (a failed resume): start() reports it, not a turn.
          this.#earlyResult = output.error ?? output.subtype;
          break;
        }
        this.#emitAll(this.#translator.translate(output));
        this.#inTurn = false;
        this.#watchdogFired = false;
        this.#updateStatus();
        break;
      case "control-request":
        this.#onControlRequest(output);
        break;
      case "control-response": {
        const pending = this.#controls.get(output.requestId);
        if (!pending) break;
        this.#controls.delete(output.requestId);
        const answer: ControlAnswer = { ok: output.ok, response: output.response };
        if (output.error !== undefined) answer.error = output.error;
        pending.resolve(answer);
        break;
      }
      case "control-cancel":
        this.#cancelled.add(output.requestId);
        break;
      case "system":
        this.#onSystem(output.subtype, output.message);
        break;
      case "invalid":
        this.#diagnostic(`${output.error}: ${output.line}`);
        break;
      case "other":
        this.#context.log.debug(`ignored Claude output of type ${output.type}`);
        break;
      default:
        this.#emitAll(this.#translator.translate(output));
    }
  }

  #onInit(init: ClaudeOutput & { kind: "init" }): void {
    if (init.sessionId !== this.#sessionId) {
      this.#sessionId = init.sessionId;
      this.#emit({ type: "session-id", id: init.sessionId });
    }
    if (this.#transcripts.has(init.sessionId)) return;
    const path = init.projectDir !== undefined
      ? `${init.projectDir}/${init.sessionId}.jsonl`
      : transcriptPathFor(init.cwd ?? this.#context.cwd, init.sessionId, {
        HOME: this.#context.env.HOME ?? this.#baseEnv.HOME,
        CLAUDE_CONFIG_DIR: this.#context.env.CLAUDE_CONFIG_DIR ?? this.#baseEnv.CLAUDE_CONFIG_DIR,
      });
    if (path === undefined) return;
    this.#transcripts.add(init.sessionId);
    this.#emit({ type: "transcript", path });
  }

  #consume(uuid: string | undefined, how: string): void {
    let key = uuid !== undefined && this.#unconsumed.has(uuid) ? uuid : undefined;
    if (key === undefined && how === "replay" && uuid === undefined) {
      key = this.#unconsumed.keys().next().value; // no uuid echoed: oldest first
    }
    if (key === undefined) return;
    const ids = this.#unconsumed.get(key) ?? [];
    this.#unconsumed.delete(key);
    this.#inTurn = true; // taken in: its turn runs until the next result
    this.#emit({ type: "consumed", messageIds: ids });
  }

  #cancelDelivery(uuid: string): void {
    const ids = this.#unconsumed.get(uuid);
    if (!ids) return;
    this.#unconsumed.delete(uuid);
    this.#diagnostic(
      `Claude cancelled delivery ${uuid} before taking in messages ${ids.join(", ")}`,
    );
    this.#updateStatus();
  }

  #onSystem(subtype: string, message: Record<string, unknown>): void {
    if (subtype === "permission_denied") {
      const tool = typeof message.tool_name === "string" ? message.tool_name : undefined;
      const text = typeof message.message === "string" ? message.message : "permission denied";
      this.#emit({ type: "step", kind: "permission_denied", text, ...(tool ? { tool } : {}) });
      return;
    }
    if (subtype === "compact_boundary") {
      this.#emit({ type: "step", kind: "compact", text: "conversation compacted" });
      return;
    }
    this.#context.log.debug(`Claude system message ${subtype}`);
  }

  #onControlRequest(request: ClaudeOutput & { kind: "control-request" }): void {
    if (request.subtype === "can_use_tool") {
      void this.#answerPermission(request.requestId, request.request);
      return;
    }
    this.#write(
      encodeControlError(request.requestId, `Unsupported control request: ${request.subtype}`),
    ).catch(() => {});
  }

  async #answerPermission(requestId: string, request: Record<string, unknown>): Promise<void> {
    const tool = typeof request.tool_name === "string" ? request.tool_name : "unknown";
    const input = request.input ?? {};
    let decision: PermissionDecision;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      decision = await Promise.race([
        this.#context.decidePermission({ requestId, provider: "claude", tool, input }),
        new Promise<PermissionDecision>((resolve) => {
          timer = setTimeout(() =>
            resolve({
              decision: "deny",
              reason: `No permission decision within ${this.#permissionTimeoutMs} ms`,
            }), this.#permissionTimeoutMs);
        }),
      ]);
    } catch (error) {
      decision = { decision: "deny", reason: `The permission check failed: ${messageOf(error)}` };
    } finally {
      clearTimeout(timer);
    }
    this.#context.log.info(`permission for ${tool}: ${decision.decision}`);
    if (this.#cancelled.delete(requestId)) return;
    const response = decision.decision === "allow" ? { behavior: "allow", updatedInput: input } : {
      behavior: "deny",
      message: decision.reason ?? "Denied by the runner's permission policy",
    };
    await this.#write(encodeControlResponse(requestId, response)).catch(() => {});
  }

  // -------------------------------------------------------------------------------------------
  // Status, watchdog, interrupt

  #busy(): boolean {
    return this.#unconsumed.size > 0 || this.#inTurn;
  }

  #updateStatus(): void {
    if (!this.#ready && this.#status === "starting") return;
    if (this.#busy()) {
      this.#setStatus("busy");
      if (this.#watchdog === undefined) this.#armWatchdog();
    } else {
      this.#setStatus("idle");
      this.#clearWatchdog();
    }
  }

  #setStatus(status: AgentStatus): void {
    if (status === this.#status) return;
    this.#status = status;
    try {
      this.#events.status(status);
    } catch (error) {
      this.#context.log.error(`status callback threw: ${messageOf(error)}`);
    }
  }

  #armWatchdog(): void {
    this.#clearWatchdog();
    if (this.#watchdogMs <= 0 || !this.#child) return;
    this.#watchdog = setTimeout(() => {
      this.#watchdog = undefined;
      this.#onWatchdog();
    }, this.#watchdogMs);
  }

  #clearWatchdog(): void {
    if (this.#watchdog !== undefined) clearTimeout(this.#watchdog);
    this.#watchdog = undefined;
  }

  #onWatchdog(): void {
    const child = this.#child;
    if (!child || !this.#busy()) return;
    if (this.#watchdogFired) {
      this.#diagnostic(
        `no output from Claude for ${this.#watchdogMs} ms after an interrupt; killing it`,
      );
      signalChild(child, "SIGKILL");
      return;
    }
    this.#watchdogFired = true;
    this.#diagnostic(`no output from Claude for ${this.#watchdogMs} ms while busy; interrupting`);
    this.#armWatchdog();
    void this.interrupt();
  }

  async #doInterrupt(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#context.log.info("interrupting Claude's turn");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const answered = this.#control({ subtype: "interrupt" }).then(() => true, () => false);
    const timedOut = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), this.#interruptTimeoutMs);
    });
    const ok = await Promise.race([answered, timedOut]);
    clearTimeout(timer);
    if (!ok && this.#child === child) {
      this.#diagnostic(
        `Claude did not answer the interrupt within ${this.#interruptTimeoutMs} ms; killing it`,
      );
      signalChild(child, "SIGKILL");
    }
  }

  // -------------------------------------------------------------------------------------------
  // Reporting

  #emit(event: SessionEvent): void {
    try {
      this.#events.event(event, this.#now());
    } catch (error) {
      this.#context.log.error(`event callback threw: ${messageOf(error)}`);
    }
  }

  #emitAll(events: SessionEvent[]): void {
    for (const event of events) this.#emit(event);
  }

  #diagnostic(line: string): void {
    this.#context.log.debug(`claude: ${line}`);
    try {
      this.#events.diagnostic?.(line);
    } catch { /* never throw from a callback */ }
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
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
