/**
 * The `codex` provider: drives `codex app-server` over JSON-RPC on stdio (docs/providers/codex.md).
 *
 * Start: spawn `codex app-server [provider args]`, `initialize` → `initialized`, then resume the
 * saved thread (`thread/resume`, dropped quickly when it fails) or start one (`thread/start` with
 * the cwd, approval policy and sandbox), and report its id as a `session-id` event.
 *
 * Each delivery is one `turn/start` carrying the messages as `[relay message #ID from SENDER]`
 * blocks (the first turn of a process prefixed with the first-prompt notes). A delivery while a
 * turn runs goes into that turn (the app-server steers it). The turn's `userMessage` item, matched
 * by `clientUserMessageId`, marks the messages consumed.
 *
 * Notifications become status and session events: busy on turn start; agent messages (the last
 * one of a turn is its `response`, earlier ones are `message` steps), reasoning, command
 * executions and file changes as steps, `thread/tokenUsage/updated` summed into the turn's usage,
 * and `turn/completed` → `turn-end` (`ok: false` for interrupted and failed turns), then idle, or
 * error after a failed turn (the thread stays usable: the next delivery starts a new turn).
 *
 * Approval requests (`item/commandExecution/requestApproval`, `item/fileChange/requestApproval`,
 * `item/permissions/requestApproval` and the legacy forms) are answered through
 * `context.decidePermission` (allow → accept, deny → decline); every other server→client request
 * is answered at once, so Codex never waits on us. Watchdogs: a busy turn with no event from
 * Codex for `stallTimeoutMs` is interrupted; an interrupt not followed by the turn's end within
 * `interruptTimeoutMs` kills the process (the runner restarts it and resumes the thread).
 *
 * @module
 */
import { settlesWithin, signalChild } from "./child.ts";
import { VERSION } from "../version.ts";
import { readEnv } from "../config/mod.ts";
import { formatRelayMessage } from "./relay_instructions.ts";
import type { Message, PermissionDecision, PermissionRequest } from "../types.ts";
import type {
  AdapterContext,
  AdapterEvents,
  AdapterFactory,
  ProviderAdapter,
  SessionEvent,
  Usage,
} from "./adapter.ts";
import { CodexRpcClient, METHOD_NOT_FOUND, RpcHandlerError, type RpcId } from "./codex_rpc.ts";

/** The environment variable naming the codex executable. */
export const CODEX_BIN_ENV = "AGENT_RELAY_CODEX_BIN";

/** The codex executable: `AGENT_RELAY_CODEX_BIN` when set (and not blank), else `codex`. */
export function codexExecutable(env: Record<string, string | undefined> = readEnv()): string {
  const bin = env[CODEX_BIN_ENV]?.trim();
  return bin ? bin : "codex";
}

/** When Codex asks before running something (`thread/start`'s `approvalPolicy`). */
export type CodexApprovalPolicy = "untrusted" | "on-request" | "never";
/** Codex's sandbox (`thread/start`'s `sandbox`). */
export type CodexSandboxMode = "read-only" | "workspace-write" | "danger-full-access";

/** Every {@linkcode CodexApprovalPolicy}. */
export const CODEX_APPROVAL_POLICIES: readonly CodexApprovalPolicy[] = [
  "untrusted",
  "on-request",
  "never",
];
/** Every {@linkcode CodexSandboxMode}. */
export const CODEX_SANDBOX_MODES: readonly CodexSandboxMode[] = [
  "read-only",
  "workspace-write",
  "danger-full-access",
];

/** Options of {@linkcode createCodexAdapter}. */
export interface CodexAdapterOptions {
  /** The executable; default {@linkcode codexExecutable} (read at start). */
  bin?: string;
  /**
   * Default `on-request`. Not sent when the provider args set `approval_policy` themselves
   * (`-c approval_policy=...`): the operator's args win.
   */
  approvalPolicy?: CodexApprovalPolicy;
  /** Default `workspace-write`. Not sent when the provider args set `sandbox_mode`. */
  sandbox?: CodexSandboxMode;
  /** How long a request to Codex may take, ms. Default 30 000. */
  requestTimeoutMs?: number;
  /** How long resuming a saved thread may take before a new one is started, ms. Default 10 000. */
  resumeTimeoutMs?: number;
  /** Cap on one permission decision; past it the request is declined, ms. Default 30 000. */
  permissionTimeoutMs?: number;
  /** A busy turn with no event from Codex for this long is interrupted, ms. Default 600 000. */
  stallTimeoutMs?: number;
  /** An interrupt whose turn has not ended after this long kills Codex, ms. Default 15 000. */
  interruptTimeoutMs?: number;
  /** The clock for event times. Default `Date.now`. */
  now?: () => number;
}

/** The text of one turn: each message marked with its id and sender, notes first if given. */
export function codexTurnText(messages: readonly Message[], notes?: string): string {
  const body = messages.map((m) => formatRelayMessage(m)).join("\n\n");
  return notes ? `${notes}\n\n${body}` : body;
}

/** Whether `args` set the Codex config key `key` (`-c key=...`, `--config key=...`). */
export function argsSetConfig(args: readonly string[], key: string): boolean {
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? "";
    let value: string | undefined;
    if (a === "-c" || a === "--config") value = args[i + 1];
    else if (a.startsWith("--config=")) value = a.slice("--config=".length);
    else if (a.startsWith("-c") && a.length > 2) value = a.slice(2);
    if (value !== undefined && value.split("=")[0]?.trim() === key) return true;
  }
  return false;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => typeof v === "string" ? v : undefined;
const num = (v: unknown): number | undefined =>
  typeof v === "number" && Number.isFinite(v) ? v : undefined;
const errorText = (e: unknown): string => e instanceof Error ? e.message : String(e);

function clip(text: string, max = 4_000): string {
  return text.length > max
    ? `${text.slice(0, max)}\n... (${text.length - max} more characters)`
    : text;
}

/** The state of the turn in progress. */
interface TurnState {
  id: string;
  /** The last agent message, held until the next one or the turn's end. */
  pendingMessage: string | undefined;
  usage: Usage | undefined;
  /** The message of an `error` notification that will not be retried. */
  error: string | undefined;
}

class CodexAdapter implements ProviderAdapter {
  readonly #context: AdapterContext;
  readonly #events: AdapterEvents;
  readonly #options: CodexAdapterOptions;
  readonly #now: () => number;
  #child: Deno.ChildProcess | undefined;
  #rpc: CodexRpcClient | undefined;
  #threadId: string | undefined;
  #turn: TurnState | undefined;
  #endedTurns = new Set<string>();
  #clientIds = new Map<string, number[]>();
  #clientSeq = 0;
  #notesSent = false;
  #status: string | undefined;
  #stopping = false;
  /** The interrupt watchdog killed Codex: the turn ends (failed), it is not redelivered. */
  #killedForInterrupt = false;
  #exited = false;
  #done: Promise<void> = Promise.resolve();
  #deliveries: Promise<unknown> = Promise.resolve();
  #fileChanges = new Map<string, unknown>();
  #stallTimer: ReturnType<typeof setTimeout> | undefined;
  #interruptTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(context: AdapterContext, events: AdapterEvents, options: CodexAdapterOptions) {
    this.#context = context;
    this.#events = events;
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** Kills the provider at once (the runner's immediate exit). */
  kill(): void {
    if (this.#child) signalChild(this.#child, "SIGKILL");
  }

  get pid(): number | undefined {
    return this.#exited ? undefined : this.#child?.pid;
  }

  async start(): Promise<void> {
    if (this.#child && !this.#exited) throw new Error("Codex is already running");
    const bin = this.#options.bin ?? codexExecutable();
    const log = this.#context.log;
    this.#stopping = false;
    this.#killedForInterrupt = false;
    this.#exited = false;
    this.#notesSent = false;
    this.#threadId = undefined;
    this.#turn = undefined;
    this.#status = undefined;
    this.#clientIds.clear();
    this.#fileChanges.clear();
    let child: Deno.ChildProcess;
    try {
      child = this.#context.spawn(bin, {
        args: ["app-server", ...this.#context.args],
        cwd: this.#context.cwd,
        env: this.#context.env,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      });
    } catch (e) {
      throw new Error(`Codex executable "${bin}" could not be started: ${errorText(e)}`);
    }
    this.#child = child;
    log.info(`codex app-server started (pid ${child.pid}, executable ${bin})`);
    const rpc = new CodexRpcClient({ readable: child.stdout, writable: child.stdin }, {
      requestTimeoutMs: this.#options.requestTimeoutMs ?? 30_000,
      onNotification: (method, params) => this.#onNotification(method, params),
      onRequest: (method, params, id) => this.#onRequest(method, params, id),
      onProtocolError: (message) => log.warn(message),
    });
    this.#rpc = rpc;
    const stderr = this.#pumpStderr(child.stderr);
    this.#done = (async () => {
      const status = await child.status;
      this.#exited = true;
      this.#clearTimers();
      // Let the last notifications in the pipe be handled before reporting the exit.
      if (!(await settlesWithin(rpc.done, 2_000))) await rpc.close({ cancelRead: true });
      await rpc.close();
      // A grandchild may hold stderr open after Codex itself is gone: stop reading then.
      if (!(await settlesWithin(stderr.done, 1_000))) await stderr.cancel();
      await stderr.done;
      const expected = this.#stopping;
      if (this.#turn && (expected || this.#killedForInterrupt)) {
        this.#finishTurn("failed", `Codex exited (code ${status.code}, signal ${status.signal})`);
      } else if (this.#turn) {
        // A crash mid-turn: no turn-end, so the runner delivers the turn's messages again after
        // the restart (the interrupted turn's messages were never answered).
        log.warn(`codex exited during turn ${this.#turn.id}; its messages will be delivered again`);
        this.#turn = undefined;
        this.#clearTimers();
      }
      (expected ? log.info : log.warn)(
        `codex app-server exited (code ${status.code}, signal ${status.signal})`,
      );
      try {
        this.#events.exit({ code: status.code, signal: status.signal, expected });
      } catch (e) {
        log.error(`exit callback failed: ${errorText(e)}`);
      }
    })();
    try {
      await rpc.request("initialize", {
        clientInfo: { name: "agent-relay-runner", title: "Agent Relay runner", version: VERSION },
        capabilities: null,
      });
      await rpc.notify("initialized");
      this.#threadId = await this.#openThread(rpc);
    } catch (e) {
      log.error(`Codex did not start: ${errorText(e)}`);
      await this.stop({ timeoutMs: 2_000 });
      throw new Error(`Codex app-server did not start: ${errorText(e)}`);
    }
    this.#emit({ type: "session-id", id: this.#threadId });
    this.#setStatus("idle");
  }

  async #openThread(rpc: CodexRpcClient): Promise<string> {
    const log = this.#context.log;
    const settings: Json = { cwd: this.#context.cwd };
    const args = this.#context.args;
    if (!argsSetConfig(args, "approval_policy")) {
      settings.approvalPolicy = this.#options.approvalPolicy ?? "on-request";
    }
    if (!argsSetConfig(args, "sandbox_mode")) {
      settings.sandbox = this.#options.sandbox ?? "workspace-write";
    }
    const resumeId = this.#context.resumeId;
    if (resumeId) {
      try {
        const result = await rpc.request("thread/resume", {
          threadId: resumeId,
          ...settings,
          excludeTurns: true,
        }, { timeoutMs: this.#options.resumeTimeoutMs ?? 10_000 });
        const id = this.#threadIdOf(result, "thread/resume");
        log.info(`resumed Codex thread ${id}`);
        return id;
      } catch (e) {
        if (rpc.closed) throw e;
        log.warn(
          `Could not resume Codex thread ${resumeId} (${errorText(e)}): starting a new thread`,
        );
      }
    }
    const result = await rpc.request("thread/start", settings);
    const id = this.#threadIdOf(result, "thread/start");
    const r = result as Json;
    log.info(
      `started Codex thread ${id} (approval ${JSON.stringify(r.approvalPolicy)}, model ${
        str(r.model) ?? "?"
      })`,
    );
    return id;
  }

  #threadIdOf(result: unknown, method: string): string {
    const thread = isObject(result) ? result.thread : undefined;
    const id = isObject(thread) ? str(thread.id) : undefined;
    if (!id) throw new Error(`Codex answered ${method} without a thread id`);
    return id;
  }

  deliver(messages: Message[]): Promise<void> {
    const run = this.#deliveries.then(() => this.#deliver(messages));
    this.#deliveries = run.catch(() => {});
    return run;
  }

  async #deliver(messages: Message[]): Promise<void> {
    if (messages.length === 0) return;
    const ids = messages.map((m) => m.id);
    const rpc = this.#rpc;
    const threadId = this.#threadId;
    if (!rpc || !threadId || this.#exited || this.#stopping) {
      throw new Error(`Codex is not running: messages ${ids.join(", ")} were not delivered`);
    }
    const notes = this.#notesSent ? undefined : this.#context.firstPromptNotes;
    const text = codexTurnText(messages, notes);
    const clientId = `agent-relay-${++this.#clientSeq}`;
    this.#clientIds.set(clientId, ids);
    let result: unknown;
    try {
      result = await rpc.request("turn/start", {
        threadId,
        clientUserMessageId: clientId,
        input: [{ type: "text", text, text_elements: [] }],
      });
    } catch (e) {
      this.#clientIds.delete(clientId);
      throw new Error(`Codex did not take messages ${ids.join(", ")}: ${errorText(e)}`);
    }
    if (notes) this.#notesSent = true;
    const turn = isObject(result) ? result.turn : undefined;
    const turnId = isObject(turn) ? str(turn.id) : undefined;
    this.#context.log.info(
      `delivered messages ${ids.join(", ")} to Codex thread ${threadId} (turn ${turnId ?? "?"})`,
    );
    if (turnId) this.#turnStarted(turnId);
  }

  async interrupt(): Promise<void> {
    // A delivery being handed over may be starting the turn to interrupt.
    await this.#deliveries;
    const rpc = this.#rpc;
    const turn = this.#turn;
    if (!rpc || !turn || !this.#threadId || this.#exited) return;
    this.#context.log.info(`interrupting Codex turn ${turn.id}`);
    this.#armInterruptWatchdog(turn.id);
    try {
      await rpc.request("turn/interrupt", { threadId: this.#threadId, turnId: turn.id });
    } catch (e) {
      this.#context.log.warn(
        `Codex did not accept the interrupt of turn ${turn.id}: ${errorText(e)}`,
      );
    }
  }

  async stop(options: { timeoutMs?: number } = {}): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#stopping = true;
    this.#clearTimers();
    const timeoutMs = options.timeoutMs ?? 5_000;
    if (!this.#exited) {
      // Codex exits at the end of its input.
      await this.#rpc?.close();
      if (!(await settlesWithin(this.#done, timeoutMs))) {
        this.#context.log.warn(`codex app-server did not exit within ${timeoutMs} ms: SIGTERM`);
        signalChild(child, "SIGTERM");
        if (!(await settlesWithin(this.#done, 2_000))) signalChild(child, "SIGKILL");
      }
    }
    await this.#done;
  }

  // --- turn bookkeeping ------------------------------------------------------------------

  #turnStarted(turnId: string): void {
    if (this.#endedTurns.has(turnId)) return;
    if (this.#turn?.id !== turnId) {
      this.#turn = { id: turnId, pendingMessage: undefined, usage: undefined, error: undefined };
    }
    this.#setStatus("busy");
    this.#touch();
  }

  #finishTurn(status: string, fallbackError?: string, turnError?: string): void {
    const turn = this.#turn;
    if (!turn) return;
    this.#turn = undefined;
    this.#endedTurns.add(turn.id);
    if (this.#endedTurns.size > 64) {
      const first = this.#endedTurns.values().next().value;
      if (first !== undefined) this.#endedTurns.delete(first);
    }
    this.#clearTimers();
    this.#fileChanges.clear();
    if (turn.pendingMessage !== undefined && turn.pendingMessage.trim() !== "") {
      this.#emit({ type: "response", text: turn.pendingMessage });
    }
    const usage = turn.usage ? { usage: turn.usage } : {};
    if (status === "completed") {
      this.#emit({ type: "turn-end", ok: true, ...usage });
      this.#setStatus("idle");
    } else if (status === "interrupted") {
      this.#emit({ type: "turn-end", ok: false, error: "Turn interrupted", ...usage });
      this.#setStatus("idle");
    } else {
      const error = turnError ?? turn.error ?? fallbackError ?? "Turn failed";
      this.#context.log.warn(`Codex turn ${turn.id} failed: ${error}`);
      this.#emit({ type: "turn-end", ok: false, error, ...usage });
      this.#setStatus("error");
    }
  }

  #setStatus(status: "idle" | "busy" | "error"): void {
    if (this.#status === status) return;
    this.#status = status;
    try {
      this.#events.status(status);
    } catch (e) {
      this.#context.log.error(`status callback failed: ${errorText(e)}`);
    }
  }

  #emit(event: SessionEvent): void {
    try {
      this.#events.event(event, this.#now());
    } catch (e) {
      this.#context.log.error(`event callback failed: ${errorText(e)}`);
    }
  }

  // --- watchdogs ------------------------------------------------------------------------

  /** Notes activity from Codex: re-arms the stall watchdog while a turn runs. */
  #touch(): void {
    if (this.#stallTimer !== undefined) clearTimeout(this.#stallTimer);
    this.#stallTimer = undefined;
    if (!this.#turn || this.#exited || this.#stopping) return;
    const ms = this.#options.stallTimeoutMs ?? 600_000;
    const turnId = this.#turn.id;
    this.#stallTimer = setTimeout(() => {
      this.#stallTimer = undefined;
      if (this.#turn?.id !== turnId) return;
      this.#context.log.warn(`Codex sent nothing for ${ms} ms during turn ${turnId}: interrupting`);
      this.interrupt();
    }, ms);
  }

  #armInterruptWatchdog(turnId: string): void {
    if (this.#interruptTimer !== undefined) return;
    const ms = this.#options.interruptTimeoutMs ?? 15_000;
    this.#interruptTimer = setTimeout(() => {
      this.#interruptTimer = undefined;
      if (this.#turn?.id !== turnId || this.#exited) return;
      this.#context.log.error(
        `Codex turn ${turnId} did not end within ${ms} ms of the interrupt: killing codex`,
      );
      this.#killedForInterrupt = true;
      if (this.#child) signalChild(this.#child, "SIGKILL");
    }, ms);
  }

  #clearTimers(): void {
    if (this.#stallTimer !== undefined) clearTimeout(this.#stallTimer);
    if (this.#interruptTimer !== undefined) clearTimeout(this.#interruptTimer);
    this.#stallTimer = undefined;
    this.#interruptTimer = undefined;
  }

  // --- notifications --------------------------------------------------------------------

  #onNotification(method: string, params: unknown): void {
    const p = isObject(params) ? params : {};
    const log = this.#context.log;
    if (this.#turn) this.#touch();
    switch (method) {
      case "turn/started": {
        const id = isObject(p.turn) ? str(p.turn.id) : undefined;
        if (id && this.#isOurThread(p)) this.#turnStarted(id);
        return;
      }
      case "turn/completed": {
        if (!this.#isOurThread(p)) return;
        const turn = isObject(p.turn) ? p.turn : {};
        const id = str(turn.id);
        if (!this.#turn || (id && id !== this.#turn.id)) {
          if (id && !this.#endedTurns.has(id)) {
            // A turn we never saw start (e.g. started before a resume): still end it cleanly.
            this.#turn = { id, pendingMessage: undefined, usage: undefined, error: undefined };
          } else return;
        }
        const error = isObject(turn.error) ? str(turn.error.message) : undefined;
        this.#finishTurn(str(turn.status) ?? "failed", undefined, error);
        return;
      }
      case "item/started":
        return this.#onItem("started", p);
      case "item/completed":
        return this.#onItem("completed", p);
      case "thread/tokenUsage/updated": {
        const turn = this.#turn;
        if (!turn || str(p.turnId) !== turn.id) return;
        const last = isObject(p.tokenUsage) ? p.tokenUsage.last : undefined;
        if (!isObject(last)) return;
        const u = turn.usage ?? {};
        turn.usage = {
          inputTokens: (u.inputTokens ?? 0) + (num(last.inputTokens) ?? 0),
          outputTokens: (u.outputTokens ?? 0) + (num(last.outputTokens) ?? 0),
          cacheReadTokens: (u.cacheReadTokens ?? 0) + (num(last.cachedInputTokens) ?? 0),
          cacheWriteTokens: (u.cacheWriteTokens ?? 0) + (num(last.cacheWriteInputTokens) ?? 0),
        };
        return;
      }
      case "error": {
        const message = isObject(p.error) ? str(p.error.message) : undefined;
        const text = message ?? "unknown error";
        if (p.willRetry === true) {
          log.warn(`Codex error (retrying): ${text}`);
          return;
        }
        log.warn(`Codex error: ${text}`);
        if (this.#turn && (!str(p.turnId) || str(p.turnId) === this.#turn.id)) {
          this.#turn.error = text;
        }
        return;
      }
      case "warning":
      case "configWarning":
      case "deprecationNotice":
      case "guardianWarning": {
        const text = str(p.message) ?? str(p.summary) ?? JSON.stringify(p);
        log.info(`Codex ${method}: ${text}`);
        this.#events.diagnostic?.(`${method}: ${text}`);
        return;
      }
      case "thread/closed":
        if (this.#isOurThread(p)) log.warn(`Codex closed thread ${this.#threadId}`);
        return;
      default:
        if (log.enabled("debug")) log.debug(`codex notification ${method}`);
    }
  }

  #isOurThread(p: Json): boolean {
    const id = str(p.threadId);
    return id === undefined || id === this.#threadId;
  }

  #onItem(phase: "started" | "completed", p: Json): void {
    if (!this.#isOurThread(p)) return;
    const item = isObject(p.item) ? p.item : undefined;
    if (!item) return;
    const type = str(item.type);
    const turnId = str(p.turnId);
    if (turnId && !this.#turn && !this.#endedTurns.has(turnId)) this.#turnStarted(turnId);
    if (phase === "started") {
      if (type === "commandExecution") {
        this.#emit({ type: "step", kind: "command", text: str(item.command) ?? "", tool: "shell" });
      } else if (type === "fileChange" && str(item.id)) {
        this.#fileChanges.set(str(item.id) as string, item.changes);
      }
      return;
    }
    switch (type) {
      case "userMessage": {
        const clientId = str(item.clientId);
        const ids = clientId ? this.#clientIds.get(clientId) : undefined;
        if (clientId && ids) {
          this.#clientIds.delete(clientId);
          this.#emit({ type: "consumed", messageIds: ids });
        } else {
          const text = Array.isArray(item.content)
            ? item.content.map((c) => isObject(c) ? str(c.text) ?? "" : "").join("\n")
            : "";
          this.#emit({ type: "prompt", text });
        }
        return;
      }
      case "agentMessage": {
        const text = str(item.text) ?? "";
        const turn = this.#turn;
        if (!turn) {
          if (text.trim()) this.#emit({ type: "response", text });
          return;
        }
        if (turn.pendingMessage !== undefined && turn.pendingMessage.trim() !== "") {
          this.#emit({ type: "step", kind: "message", text: turn.pendingMessage });
        }
        turn.pendingMessage = text;
        return;
      }
      case "reasoning": {
        const parts = [
          ...(Array.isArray(item.summary) ? item.summary : []),
          ...(Array.isArray(item.content) ? item.content : []),
        ].filter((s): s is string => typeof s === "string" && s.trim() !== "");
        if (parts.length) this.#emit({ type: "reasoning", text: parts.join("\n\n") });
        return;
      }
      case "commandExecution": {
        const status = str(item.status) ?? "completed";
        const exit = num(item.exitCode);
        const output = str(item.aggregatedOutput) ?? "";
        const head = status === "declined"
          ? `declined: ${str(item.command) ?? ""}`
          : `${status}${exit !== undefined ? ` (exit ${exit})` : ""}: ${str(item.command) ?? ""}`;
        this.#emit({
          type: "step",
          kind: "tool_result",
          text: clip(output ? `${head}\n${output}` : head),
          tool: "shell",
        });
        return;
      }
      case "fileChange": {
        const changes = Array.isArray(item.changes) ? item.changes : [];
        const lines = changes.map((c) => {
          const change = isObject(c) ? c : {};
          const kind = isObject(change.kind) ? str(change.kind.type) : str(change.kind);
          return `${kind ?? "change"} ${str(change.path) ?? "?"}`;
        });
        this.#emit({
          type: "step",
          kind: "file_change",
          text: `${str(item.status) ?? "completed"}: ${lines.join(", ") || "no files"}`,
          tool: "apply_patch",
        });
        return;
      }
      case "mcpToolCall":
      case "dynamicToolCall": {
        const tool = [str(item.server) ?? str(item.namespace), str(item.tool)].filter(Boolean)
          .join(".");
        this.#emit({
          type: "step",
          kind: "tool_use",
          text: clip(`${str(item.status) ?? ""}: ${tool} ${JSON.stringify(item.arguments ?? {})}`),
          tool: tool || type,
        });
        return;
      }
      case "webSearch": {
        this.#emit({ type: "step", kind: "tool_use", text: str(item.query) ?? "", tool: type });
        return;
      }
      default:
        return;
    }
  }

  // --- server→client requests -----------------------------------------------------------

  #onRequest(method: string, params: unknown, id: RpcId): unknown {
    const p = isObject(params) ? params : {};
    this.#touch();
    switch (method) {
      case "item/commandExecution/requestApproval": {
        const tool = str(p.kind) === "writeStdin" ? "write_stdin" : "exec_command";
        const input = { command: p.command ?? null, cwd: p.cwd ?? null, reason: p.reason ?? null };
        return this.#decide(id, tool, input).then((d) => ({
          decision: d.decision === "allow" ? "accept" : "decline",
        }));
      }
      case "item/fileChange/requestApproval": {
        const itemId = str(p.itemId);
        const input = {
          changes: (itemId ? this.#fileChanges.get(itemId) : undefined) ?? null,
          reason: p.reason ?? null,
          grantRoot: p.grantRoot ?? null,
        };
        return this.#decide(id, "apply_patch", input).then((d) => ({
          decision: d.decision === "allow" ? "accept" : "decline",
        }));
      }
      case "item/permissions/requestApproval": {
        const asked = isObject(p.permissions) ? p.permissions : {};
        const input = { permissions: asked, reason: p.reason ?? null, cwd: p.cwd ?? null };
        return this.#decide(id, "request_permissions", input).then((d) => {
          const granted: Json = {};
          if (d.decision === "allow") {
            for (const [k, v] of Object.entries(asked)) if (v !== null) granted[k] = v;
          }
          return { permissions: granted, scope: "turn" };
        });
      }
      case "execCommandApproval": {
        const command = Array.isArray(p.command) ? p.command.join(" ") : p.command ?? null;
        const input = { command, cwd: p.cwd ?? null, reason: p.reason ?? null };
        return this.#decide(id, "exec_command", input).then((d) => ({
          decision: d.decision === "allow"
            ? "approved"
            : { denied: { rejection: d.reason ?? "Denied by the runner's permission policy" } },
        }));
      }
      case "applyPatchApproval": {
        const input = { changes: p.fileChanges ?? null, reason: p.reason ?? null };
        return this.#decide(id, "apply_patch", input).then((d) => ({
          decision: d.decision === "allow"
            ? "approved"
            : { denied: { rejection: d.reason ?? "Denied by the runner's permission policy" } },
        }));
      }
      case "mcpServer/elicitation/request":
        this.#context.log.info("Codex asked for MCP elicitation input: declined (no user here)");
        return { action: "decline", content: null, _meta: null };
      case "item/tool/requestUserInput":
        this.#context.log.info("Codex asked for user input: answered with no answers");
        return { answers: {} };
      default:
        this.#context.log.warn(`Codex sent request ${method}, which the runner does not serve`);
        throw new RpcHandlerError(METHOD_NOT_FOUND, `The runner does not serve ${method}`);
    }
  }

  /** Asks the permission policy; any failure or a decision later than the cap is a deny. */
  async #decide(id: RpcId, tool: string, input: unknown): Promise<PermissionDecision> {
    const request: PermissionRequest = {
      requestId: `codex-${this.#threadId ?? "thread"}-${id}`,
      provider: "codex",
      tool,
      input,
    };
    const capMs = this.#options.permissionTimeoutMs ?? 30_000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const cap = new Promise<PermissionDecision>((resolve) => {
      timer = setTimeout(
        () => resolve({ decision: "deny", reason: `No permission decision within ${capMs} ms` }),
        capMs,
      );
    });
    let decision: PermissionDecision;
    try {
      decision = await Promise.race([this.#context.decidePermission(request), cap]);
      if (decision?.decision !== "allow" && decision?.decision !== "deny") {
        decision = { decision: "deny", reason: "The permission policy gave no valid decision" };
      }
    } catch (e) {
      decision = { decision: "deny", reason: `Permission decision failed: ${errorText(e)}` };
    } finally {
      clearTimeout(timer);
    }
    const summary = isObject(input) && typeof input.command === "string"
      ? `: ${input.command}`
      : "";
    this.#context.log.info(`Codex permission ${tool}${summary} -> ${decision.decision}`);
    this.#emit({
      type: "step",
      kind: "permission",
      text: `${decision.decision} ${tool}${summary}${
        decision.reason ? ` (${decision.reason})` : ""
      }`,
      tool,
    });
    this.#touch();
    return decision;
  }

  /** Reads stderr line by line into `diagnostic` (or the debug log); `cancel` stops reading. */
  #pumpStderr(
    stream: ReadableStream<Uint8Array>,
  ): { done: Promise<void>; cancel(): Promise<void> } {
    const reader = stream.getReader();
    const decoder = new TextDecoder();
    const emit = (raw: string) => {
      // deno-lint-ignore no-control-regex
      const line = raw.replace(/\x1b\[[0-9;]*m/g, "").trimEnd();
      if (!line) return;
      if (this.#events.diagnostic) this.#events.diagnostic(line);
      else this.#context.log.debug(`codex stderr: ${line}`);
    };
    const done = (async () => {
      let buffer = "";
      try {
        while (true) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let nl: number;
          while ((nl = buffer.indexOf("\n")) >= 0) {
            emit(buffer.slice(0, nl));
            buffer = buffer.slice(nl + 1);
          }
        }
      } catch {
        // cancelled or broken: nothing more to read
      } finally {
        reader.releaseLock();
      }
      emit(buffer + decoder.decode());
    })();
    return { done, cancel: () => reader.cancel().catch(() => {}) };
  }
}

/** Builds a Codex adapter with options beyond the {@linkcode AdapterFactory} signature. */
export function createCodexAdapter(
  context: AdapterContext,
  events: AdapterEvents,
  options: CodexAdapterOptions = {},
): ProviderAdapter {
  return new CodexAdapter(context, events, options);
}

/** The Codex {@linkcode AdapterFactory} with default options (executable from `AGENT_RELAY_CODEX_BIN`). */
export const codexAdapter: AdapterFactory = (context, events) =>
  createCodexAdapter(context, events);
