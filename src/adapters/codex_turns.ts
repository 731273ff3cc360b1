/**
 * The turns of a Codex thread: Codex's notifications turned into status and session events.
 * Busy on turn start; agent messages (the last one of a turn is its `response`, earlier ones are
 * `message` steps), reasoning, command executions and file changes as steps,
 * `thread/tokenUsage/updated` summed into the turn's usage, the turn's `userMessage` item
 * (matched by `clientUserMessageId`) marking its messages consumed, and `turn/completed` ->
 * `turn-end`, then idle, or error after a failed turn. An `error` Codex will not retry ends the
 * turn too when its `turn/completed` does not follow (the adapter's grace timer).
 *
 * @module
 */
import type { Logger } from "../logger.ts";
import type { SessionEvent, Usage } from "./adapter.ts";
import { clip, isObject, type Json, num, str } from "./codex_json.ts";
import { oneSentence } from "./turn_error.ts";

/** The state of the turn in progress. */
export interface TurnState {
  id: string;
  /** The last agent message, held until the next one or the turn's end. */
  pendingMessage: string | undefined;
  usage: Usage | undefined;
  /** The message of an `error` notification that will not be retried. */
  error: string | undefined;
}

/** What {@linkcode CodexTurns} reports to, and asks of, the adapter. */
export interface CodexTurnsOptions {
  emit(event: SessionEvent): void;
  status(status: "idle" | "busy" | "error"): void;
  diagnostic(line: string): void;
  /** The thread of this process. */
  threadId(): string | undefined;
  /** Notes activity while a turn runs (re-arms the stall watchdog). */
  touch(): void;
  /** A turn ended: disarm the watchdogs. */
  turnEnded(): void;
  /**
   * Codex reported an error it will not retry for turn `turnId`: the turn is over, and should
   * end even if its `turn/completed` never comes.
   */
  failing(turnId: string): void;
  log: Logger;
}

/** Turn bookkeeping for one Codex process ({@linkcode reset} at each start). */
export class CodexTurns {
  readonly #options: CodexTurnsOptions;
  #turn: TurnState | undefined;
  readonly #endedTurns = new Set<string>();
  readonly #clientIds = new Map<string, number[]>();
  readonly #fileChanges = new Map<string, unknown>();

  constructor(options: CodexTurnsOptions) {
    this.#options = options;
  }

  /** The turn in progress. */
  get current(): TurnState | undefined {
    return this.#turn;
  }

  /** Forgets the turn and the pending deliveries (a new process). */
  reset(): void {
    this.#turn = undefined;
    this.#clientIds.clear();
    this.#fileChanges.clear();
  }

  /** Forgets the turn in progress without ending it (a crash: its messages come again). */
  drop(): void {
    this.#turn = undefined;
  }

  /** Messages `ids` were sent as the user message `clientId`. */
  expect(clientId: string, ids: number[]): void {
    this.#clientIds.set(clientId, ids);
  }

  /** The user message `clientId` was not taken after all. */
  unexpect(clientId: string): void {
    this.#clientIds.delete(clientId);
  }

  /** The changes of the file-change item `itemId`, as seen when it started. */
  changesOf(itemId: string): unknown {
    return this.#fileChanges.get(itemId);
  }

  /** Turn `turnId` started (or was found running): busy. */
  turnStarted(turnId: string): void {
    if (this.#endedTurns.has(turnId)) return;
    if (this.#turn?.id !== turnId) {
      this.#turn = { id: turnId, pendingMessage: undefined, usage: undefined, error: undefined };
    }
    this.#options.status("busy");
    this.#options.touch();
  }

  /**
   * Ends the turn in progress with Codex's `status`: its held message becomes the response, then
   * `turn-end` (`ok: false` for interrupted and failed turns) and idle, or error after a failure.
   */
  finish(status: string, fallbackError?: string, turnError?: string): void {
    const turn = this.#turn;
    if (!turn) return;
    this.#turn = undefined;
    this.#endedTurns.add(turn.id);
    if (this.#endedTurns.size > 64) {
      const first = this.#endedTurns.values().next().value;
      if (first !== undefined) this.#endedTurns.delete(first);
    }
    this.#options.turnEnded();
    this.#fileChanges.clear();
    if (turn.pendingMessage !== undefined && turn.pendingMessage.trim() !== "") {
      this.#options.emit({ type: "response", text: turn.pendingMessage });
    }
    const usage = turn.usage ? { usage: turn.usage } : {};
    if (status === "completed") {
      this.#options.emit({ type: "turn-end", ok: true, ...usage });
      this.#options.status("idle");
    } else if (status === "interrupted") {
      this.#options.emit({ type: "turn-end", ok: false, error: "Turn interrupted", ...usage });
      this.#options.status("idle");
    } else {
      const error = oneSentence(turnError ?? turn.error ?? fallbackError, "Turn failed");
      this.#options.log.warn(`Codex turn ${turn.id} failed: ${error}`);
      this.#options.emit({ type: "turn-end", ok: false, error, ...usage });
      this.#options.status("error");
    }
  }

  /** Takes one notification from Codex. */
  onNotification(method: string, params: unknown): void {
    const p = isObject(params) ? params : {};
    const log = this.#options.log;
    if (this.#turn) this.#options.touch();
    switch (method) {
      case "turn/started": {
        const id = isObject(p.turn) ? str(p.turn.id) : undefined;
        if (id && this.#isOurThread(p)) this.turnStarted(id);
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
        this.finish(str(turn.status) ?? "failed", undefined, error);
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
          this.#options.failing(this.#turn.id);
        }
        return;
      }
      case "warning":
      case "configWarning":
      case "deprecationNotice":
      case "guardianWarning": {
        const text = str(p.message) ?? str(p.summary) ?? JSON.stringify(p);
        log.info(`Codex ${method}: ${text}`);
        this.#options.diagnostic(`${method}: ${text}`);
        return;
      }
      case "thread/closed":
        if (this.#isOurThread(p)) log.warn(`Codex closed thread ${this.#options.threadId()}`);
        return;
      default:
        if (log.enabled("debug")) log.debug(`codex notification ${method}`);
    }
  }

  #isOurThread(p: Json): boolean {
    const id = str(p.threadId);
    return id === undefined || id === this.#options.threadId();
  }

  #onItem(phase: "started" | "completed", p: Json): void {
    if (!this.#isOurThread(p)) return;
    const item = isObject(p.item) ? p.item : undefined;
    if (!item) return;
    const type = str(item.type);
    const turnId = str(p.turnId);
    if (turnId && !this.#turn && !this.#endedTurns.has(turnId)) this.turnStarted(turnId);
    if (phase === "started") {
      if (type === "commandExecution") {
        this.#options.emit({
          type: "step",
          kind: "command",
          text: str(item.command) ?? "",
          tool: "shell",
        });
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
          this.#options.emit({ type: "consumed", messageIds: ids });
        } else {
          const text = Array.isArray(item.content)
            ? item.content.map((c) => isObject(c) ? str(c.text) ?? "" : "").join("\n")
            : "";
          this.#options.emit({ type: "prompt", text });
        }
        return;
      }
      case "agentMessage": {
        const text = str(item.text) ?? "";
        const turn = this.#turn;
        if (!turn) {
          if (text.trim()) this.#options.emit({ type: "response", text });
          return;
        }
        if (turn.pendingMessage !== undefined && turn.pendingMessage.trim() !== "") {
          this.#options.emit({ type: "step", kind: "message", text: turn.pendingMessage });
        }
        turn.pendingMessage = text;
        return;
      }
      case "reasoning": {
        const parts = [
          ...(Array.isArray(item.summary) ? item.summary : []),
          ...(Array.isArray(item.content) ? item.content : []),
        ].filter((s): s is string => typeof s === "string" && s.trim() !== "");
        if (parts.length) this.#options.emit({ type: "reasoning", text: parts.join("\n\n") });
        return;
      }
      case "commandExecution": {
        const status = str(item.status) ?? "completed";
        const exit = num(item.exitCode);
        const output = str(item.aggregatedOutput) ?? "";
        const head = status === "declined"
          ? `declined: ${str(item.command) ?? ""}`
          : `${status}${exit !== undefined ? ` (exit ${exit})` : ""}: ${str(item.command) ?? ""}`;
        this.#options.emit({
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
        this.#options.emit({
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
        this.#options.emit({
          type: "step",
          kind: "tool_use",
          text: clip(`${str(item.status) ?? ""}: ${tool} ${JSON.stringify(item.arguments ?? {})}`),
          tool: tool || type,
        });
        return;
      }
      case "webSearch": {
        this.#options.emit({
          type: "step",
          kind: "tool_use",
          text: str(item.query) ?? "",
          tool: type,
        });
        return;
      }
      default:
        return;
    }
  }
}
