/**
 * The `codex` provider: drives `codex app-server` over JSON-RPC on stdio (docs/providers/codex.md).
 *
 * Start: spawn `codex app-server [provider args]`, `initialize` -> `initialized`, then resume the
 * saved thread (`thread/resume`, dropped quickly when it fails) or start one (`thread/start` with
 * the cwd, approval policy and sandbox), and report its id as a `session-id` event.
 *
 * Each delivery is one `turn/start` carrying the messages as `[relay message #ID from SENDER]`
 * blocks (the first turn of a process prefixed with the first-prompt notes). A delivery while a
 * turn runs goes into that turn (the app-server steers it). Codex's notifications become status
 * and session events in codex_turns.ts; its requests (approvals) are served in
 * codex_approvals.ts.
 *
 * Watchdogs: a busy turn with no event from Codex for `stallTimeoutMs` is interrupted; an
 * interrupt not followed by the turn's end within `interruptTimeoutMs` kills the process (the
 * runner restarts it and resumes the thread). Stop: close stdin (Codex exits at the end of its
 * input), SIGTERM after `timeoutMs`, SIGKILL 2 s later.
 *
 * @module
 */
import { settlesWithin, signalChild, stopChild } from "./child.ts";
import { VERSION } from "../version.ts";
import type { Message } from "../types.ts";
import type {
  AdapterContext,
  AdapterEvents,
  AdapterFactory,
  ProviderAdapter,
  SessionEvent,
} from "./adapter.ts";
import { CodexRpcClient } from "./codex_rpc.ts";
import {
  argsSetConfig,
  type CodexAdapterOptions,
  codexExecutable,
  codexTurnText,
} from "./codex_config.ts";
import { serveCodexRequest } from "./codex_approvals.ts";
import { isObject, type Json, str } from "./codex_json.ts";
import { CodexTurns } from "./codex_turns.ts";
import { errorText } from "../util/mod.ts";

export type { CodexAdapterOptions } from "./codex_config.ts";

class CodexAdapter implements ProviderAdapter {
  readonly #context: AdapterContext;
  readonly #events: AdapterEvents;
  readonly #options: CodexAdapterOptions;
  readonly #now: () => number;
  readonly #turns: CodexTurns;
  #child: Deno.ChildProcess | undefined;
  #rpc: CodexRpcClient | undefined;
  #threadId: string | undefined;
  #clientSeq = 0;
  #notesSent = false;
  #status: string | undefined;
  #stopping = false;
  /** The interrupt watchdog killed Codex: the turn ends (failed), it is not redelivered. */
  #killedForInterrupt = false;
  #exited = false;
  #done: Promise<void> = Promise.resolve();
  #deliveries: Promise<unknown> = Promise.resolve();
  #stallTimer: ReturnType<typeof setTimeout> | undefined;
  #interruptTimer: ReturnType<typeof setTimeout> | undefined;
  #failTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(context: AdapterContext, events: AdapterEvents, options: CodexAdapterOptions) {
    this.#context = context;
    this.#events = events;
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#turns = new CodexTurns({
      emit: (event) => this.#emit(event),
      status: (status) => this.#setStatus(status),
      diagnostic: (line) => this.#events.diagnostic?.(line),
      threadId: () => this.#threadId,
      touch: () => this.#touch(),
      turnEnded: () => this.#clearTimers(),
      failing: (turnId) => this.#armFailGrace(turnId),
      log: context.log,
    });
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
    this.#status = undefined;
    this.#turns.reset();
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
      onNotification: (method, params) => {
        if (this.#turns.current) this.#touch();
        this.#turns.onNotification(method, params);
      },
      onRequest: (method, params, id) => {
        this.#touch();
        return serveCodexRequest({ method, params, id }, {
          threadId: this.#threadId,
          changesOf: (itemId) => this.#turns.changesOf(itemId),
          decidePermission: this.#context.decidePermission,
          permissionTimeoutMs: this.#options.permissionTimeoutMs ?? 30_000,
          emit: (event) => this.#emit(event),
          touch: () => this.#touch(),
          log,
        });
      },
      onProtocolError: (message) => log.warn(message),
    });
    this.#rpc = rpc;
    this.#done = this.#watchExit(child, rpc, this.#pumpStderr(child.stderr));
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

  async #watchExit(
    child: Deno.ChildProcess,
    rpc: CodexRpcClient,
    stderr: { done: Promise<void>; cancel(): Promise<void> },
  ): Promise<void> {
    const log = this.#context.log;
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
    const turn = this.#turns.current;
    if (turn && (expected || this.#killedForInterrupt)) {
      this.#turns.finish("failed", `Codex exited (code ${status.code}, signal ${status.signal})`);
    } else if (turn) {
      // A crash mid-turn: no turn-end, so the runner delivers the turn's messages again after
      // the restart (the interrupted turn's messages were never answered).
      log.warn(`codex exited during turn ${turn.id}; its messages will be delivered again`);
      this.#turns.drop();
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
        const id = threadIdOf(result, "thread/resume");
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
    const id = threadIdOf(result, "thread/start");
    const r = result as Json;
    log.info(
      `started Codex thread ${id} (approval ${JSON.stringify(r.approvalPolicy)}, model ${
        str(r.model) ?? "?"
      })`,
    );
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
    this.#turns.expect(clientId, ids);
    let result: unknown;
    try {
      result = await rpc.request("turn/start", {
        threadId,
        clientUserMessageId: clientId,
        input: [{ type: "text", text, text_elements: [] }],
      });
    } catch (e) {
      this.#turns.unexpect(clientId);
      throw new Error(`Codex did not take messages ${ids.join(", ")}: ${errorText(e)}`);
    }
    if (notes) this.#notesSent = true;
    const turn = isObject(result) ? result.turn : undefined;
    const turnId = isObject(turn) ? str(turn.id) : undefined;
    this.#context.log.info(
      `delivered messages ${ids.join(", ")} to Codex thread ${threadId} (turn ${turnId ?? "?"})`,
    );
    if (turnId) this.#turns.turnStarted(turnId);
  }

  async interrupt(): Promise<void> {
    // A delivery being handed over may be starting the turn to interrupt.
    await this.#deliveries;
    const rpc = this.#rpc;
    const turn = this.#turns.current;
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
    if (this.#exited) return await this.#done;
    // Codex exits at the end of its input.
    await stopChild(child, this.#done, {
      closeStdin: () => this.#rpc?.close(),
      graceMs: timeoutMs,
      termGraceMs: 2_000,
      onSignal: (signal) => {
        if (signal === "SIGTERM") {
          this.#context.log.warn(`codex app-server did not exit within ${timeoutMs} ms: SIGTERM`);
        }
      },
    });
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
    const turn = this.#turns.current;
    if (!turn || this.#exited || this.#stopping) return;
    const ms = this.#options.stallTimeoutMs ?? 600_000;
    const turnId = turn.id;
    this.#stallTimer = setTimeout(() => {
      this.#stallTimer = undefined;
      if (this.#turns.current?.id !== turnId) return;
      this.#context.log.warn(`Codex sent nothing for ${ms} ms during turn ${turnId}: interrupting`);
      this.interrupt();
    }, ms);
  }

  #armInterruptWatchdog(turnId: string): void {
    if (this.#interruptTimer !== undefined) return;
    const ms = this.#options.interruptTimeoutMs ?? 15_000;
    this.#interruptTimer = setTimeout(() => {
      this.#interruptTimer = undefined;
      if (this.#turns.current?.id !== turnId || this.#exited) return;
      this.#context.log.error(
        `Codex turn ${turnId} did not end within ${ms} ms of the interrupt: killing codex`,
      );
      this.#killedForInterrupt = true;
      if (this.#child) signalChild(this.#child, "SIGKILL");
    }, ms);
  }

  /**
   * Codex sent an error it will not retry for turn `turnId`; its `turn/completed` (status
   * `failed`) normally follows at once. If it has not come within `failGraceMs`, the turn ends
   * failed anyway (and Codex is asked to interrupt it, so the next `turn/start` is a turn of its
   * own), so a failed turn is always reported; a late `turn/completed` is then ignored.
   */
  #armFailGrace(turnId: string): void {
    if (this.#failTimer !== undefined) return;
    const ms = this.#options.failGraceMs ?? 5_000;
    this.#failTimer = setTimeout(() => {
      this.#failTimer = undefined;
      if (this.#turns.current?.id !== turnId || this.#exited) return;
      this.#context.log.warn(
        `Codex reported a failure of turn ${turnId} but did not end it within ${ms} ms;` +
          " ending it and asking Codex to interrupt it",
      );
      // Closed on Codex's side too, first: else the next turn/start would steer this turn.
      const threadId = this.#threadId;
      this.#rpc?.request("turn/interrupt", { threadId, turnId }).catch((e) =>
        this.#context.log.debug(`interrupt of failed turn ${turnId}: ${errorText(e)}`)
      );
      this.#turns.finish("failed");
    }, ms);
  }

  #clearTimers(): void {
    if (this.#stallTimer !== undefined) clearTimeout(this.#stallTimer);
    if (this.#interruptTimer !== undefined) clearTimeout(this.#interruptTimer);
    if (this.#failTimer !== undefined) clearTimeout(this.#failTimer);
    this.#stallTimer = undefined;
    this.#interruptTimer = undefined;
    this.#failTimer = undefined;
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

/** The thread id in the answer to `method`; throws when there is none. */
function threadIdOf(result: unknown, method: string): string {
  const thread = isObject(result) ? result.thread : undefined;
  const id = isObject(thread) ? str(thread.id) : undefined;
  if (!id) throw new Error(`Codex answered ${method} without a thread id`);
  return id;
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
