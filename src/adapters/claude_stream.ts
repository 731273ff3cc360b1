/**
 * Claude Code's stream-json protocol: splitting stdout into lines, decoding each line into a
 * typed {@linkcode ClaudeOutput}, encoding what the runner writes to stdin, and translating the
 * session's output into the runner's {@linkcode SessionEvent}s, each exactly once.
 *
 * Shapes as observed on `claude` 2.1.331 with `-p --input-format stream-json --output-format
 * stream-json --verbose --replay-user-messages` (docs/providers/claude.md lists them):
 *
 * - `{"type":"system","subtype":"init","session_id","cwd","model","memory_paths":{"auto"},...}`
 *   at the start of every turn (not at process start).
 * - `{"type":"user","message":{...},"uuid","isReplay":true}`: a user message written to stdin,
 *   echoed once when Claude takes it in; the `uuid` written with it comes back.
 * - `{"type":"user","message":{"content":[{"type":"tool_result",...}]},"parent_tool_use_id"}`.
 * - `{"type":"user",...,"isSynthetic":true}`: hook feedback ("Stop hook feedback:\n..."), which
 *   becomes no event (the runner mirrors the messages a Stop block folds in itself).
 * - `{"type":"assistant","message":{"id","content":[ONE block]},"parent_tool_use_id"}`: one
 *   line per content block (`thinking`, `text`, `tool_use`), grouped by `message.id`.
 * - `{"type":"result","subtype":"success"|"error_during_execution"|"error_max_turns"|...,
 *   "is_error","result","usage","total_cost_usd","session_id","terminal_reason","errors"?}`.
 * - `{"type":"control_request","request_id","request":{"subtype":"can_use_tool",...}}`,
 *   `{"type":"control_response","response":{"subtype":"success"|"error","request_id",...}}`,
 *   `{"type":"control_cancel_request","request_id"}`.
 * - `{"type":"command_lifecycle","command_uuid","state":"queued"|"started"|"completed"|
 *   "cancelled"}` for user messages written with a `uuid`.
 *
 * @module
 */
import type { SessionEvent, Usage } from "./adapter.ts";
import { errorText } from "../util/mod.ts";
import { oneSentence } from "./turn_error.ts";

/** The longest stdout line kept (a longer one is reported and skipped). */
export const MAX_LINE_BYTES = 64 * 1024 * 1024;
/** Step texts (tool inputs and results) are cut to this many characters for the mirror. */
export const MAX_STEP_TEXT = 4000;

/** Splits a byte stream's decoded text into lines, holding at most `maxChars` of a partial line. */
export class LineSplitter {
  #buffer = "";
  #skipping = false;
  #maxChars: number;

  constructor(options: { maxChars?: number } = {}) {
    this.#maxChars = options.maxChars ?? MAX_LINE_BYTES;
  }

  /**
   * Adds a chunk; returns the complete lines in it (without `\n` or a trailing `\r`) and how many
   * overlong lines were dropped.
   */
  push(chunk: string): { lines: string[]; dropped: number } {
    const lines: string[] = [];
    let dropped = 0;
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf("\n", start);
      if (nl < 0) break;
      const piece = chunk.slice(start, nl);
      start = nl + 1;
      if (this.#skipping) {
        this.#skipping = false;
        this.#buffer = "";
        continue;
      }
      const line = this.#buffer + piece;
      this.#buffer = "";
      lines.push(line.endsWith("\r") ? line.slice(0, -1) : line);
    }
    if (!this.#skipping) {
      this.#buffer += chunk.slice(start);
      if (this.#buffer.length > this.#maxChars) {
        this.#buffer = "";
        this.#skipping = true;
        dropped++;
      }
    }
    return { lines, dropped };
  }

  /** The partial last line, if any (at end of stream). */
  flush(): string | undefined {
    const rest = this.#skipping ? "" : this.#buffer;
    this.#buffer = "";
    this.#skipping = false;
    return rest === "" ? undefined : rest;
  }
}

/** One content block of an assistant message. */
export type AssistantBlock =
  | { type: "text"; text: string }
  | { type: "thinking"; text: string }
  | { type: "tool_use"; id: string; name: string; input: unknown }
  | { type: "other"; blockType: string };

/** A decoded stdout line. */
export type ClaudeOutput =
  | {
    kind: "init";
    sessionId: string;
    model?: string;
    cwd?: string;
    /** The project dir Claude keeps transcripts in (from `memory_paths.auto`), if told. */
    projectDir?: string;
  }
  /** A user message written to stdin, echoed back as Claude takes it in. */
  | { kind: "replay"; uuid?: string; text: string }
  /** A user message Claude made itself: hook feedback (`synthetic`) or an interrupt marker. */
  | { kind: "user-text"; text: string; synthetic: boolean; parentToolUseId: string | null }
  | {
    kind: "assistant";
    messageId: string;
    blocks: AssistantBlock[];
    parentToolUseId: string | null;
  }
  | {
    kind: "tool-result";
    toolUseId: string;
    text: string;
    isError: boolean;
    parentToolUseId: string | null;
  }
  | {
    kind: "result";
    ok: boolean;
    subtype: string;
    /** The final response text (`result`), on success. */
    text?: string;
    error?: string;
    usage: Usage;
    sessionId?: string;
    terminalReason?: string;
  }
  | {
    kind: "control-request";
    requestId: string;
    subtype: string;
    request: Record<string, unknown>;
  }
  | { kind: "control-response"; requestId: string; ok: boolean; response?: unknown; error?: string }
  | { kind: "control-cancel"; requestId: string }
  | { kind: "lifecycle"; commandUuid: string; state: string }
  | { kind: "system"; subtype: string; message: Record<string, unknown> }
  | { kind: "other"; type: string }
  /** Not a JSON object: kept for the log, never fatal. */
  | { kind: "invalid"; line: string; error: string };

type Obj = Record<string, unknown>;

function isObj(value: unknown): value is Obj {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function str(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function num(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

/** The plain text of message content: a string, or the text of its text blocks. */
export function textOfContent(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  const parts: string[] = [];
  for (const block of content) {
    if (typeof block === "string") parts.push(block);
    else if (isObj(block) && block.type === "text" && typeof block.text === "string") {
      parts.push(block.text);
    }
  }
  return parts.join("\n");
}

/** Usage figures from a `result` line (`usage` and `total_cost_usd`). */
export function usageOf(result: Obj): Usage {
  const usage: Usage = {};
  const u = isObj(result.usage) ? result.usage : {};
  const set = (key: keyof Usage, value: number | undefined) => {
    if (value !== undefined) usage[key] = value;
  };
  set("inputTokens", num(u.input_tokens));
  set("outputTokens", num(u.output_tokens));
  set("cacheReadTokens", num(u.cache_read_input_tokens));
  set("cacheWriteTokens", num(u.cache_creation_input_tokens));
  set("costUsd", num(result.total_cost_usd));
  return usage;
}

function parentOf(o: Obj): string | null {
  return str(o.parent_tool_use_id) ?? null;
}

function assistantBlock(block: unknown): AssistantBlock {
  if (!isObj(block)) return { type: "other", blockType: typeof block };
  if (block.type === "text") return { type: "text", text: str(block.text) ?? "" };
  if (block.type === "thinking") return { type: "thinking", text: str(block.thinking) ?? "" };
  if (block.type === "redacted_thinking") return { type: "thinking", text: "" };
  if (block.type === "tool_use" || block.type === "server_tool_use") {
    return {
      type: "tool_use",
      id: str(block.id) ?? "",
      name: str(block.name) ?? "unknown",
      input: block.input,
    };
  }
  return { type: "other", blockType: str(block.type) ?? "unknown" };
}

function decodeUser(o: Obj): ClaudeOutput[] {
  const message = isObj(o.message) ? o.message : {};
  const content = message.content;
  const parent = parentOf(o);
  if (o.isReplay === true) {
    const out: ClaudeOutput = { kind: "replay", text: textOfContent(content) };
    const uuid = str(o.uuid);
    if (uuid !== undefined) out.uuid = uuid;
    return [out];
  }
  const out: ClaudeOutput[] = [];
  if (Array.isArray(content)) {
    const texts: string[] = [];
    for (const block of content) {
      if (isObj(block) && block.type === "tool_result") {
        out.push({
          kind: "tool-result",
          toolUseId: str(block.tool_use_id) ?? "",
          text: textOfContent(block.content),
          isError: block.is_error === true,
          parentToolUseId: parent,
        });
      } else if (isObj(block) && block.type === "text" && typeof block.text === "string") {
        texts.push(block.text);
      }
    }
    if (texts.length > 0) {
      out.push({
        kind: "user-text",
        text: texts.join("\n"),
        synthetic: o.isSynthetic === true,
        parentToolUseId: parent,
      });
    }
  } else if (typeof content === "string" && content !== "") {
    out.push({
      kind: "user-text",
      text: content,
      synthetic: o.isSynthetic === true,
      parentToolUseId: parent,
    });
  }
  return out;
}

function decodeResult(o: Obj): ClaudeOutput {
  const subtype = str(o.subtype) ?? "unknown";
  const ok = o.is_error !== true && subtype === "success";
  const out: ClaudeOutput & { kind: "result" } = { kind: "result", ok, subtype, usage: usageOf(o) };
  const text = str(o.result);
  if (ok && text !== undefined) out.text = text;
  if (!ok) {
    const errors = Array.isArray(o.errors) ? o.errors.filter((e) => typeof e === "string") : [];
    const parts = [
      subtype === "success" ? "" : subtype, // is_error with subtype success: an API error
      str(o.terminal_reason) ?? "",
      ...errors,
      text ?? "",
    ].filter((part) => part !== "");
    out.error = oneSentence(parts.join(": "));
  }
  const sessionId = str(o.session_id);
  if (sessionId !== undefined) out.sessionId = sessionId;
  const terminal = str(o.terminal_reason);
  if (terminal !== undefined) out.terminalReason = terminal;
  return out;
}

/** Decodes one stdout line into zero or more outputs (a user line may carry several results). */
export function decodeLine(line: string): ClaudeOutput[] {
  if (line.trim() === "") return [];
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    return [{
      kind: "invalid",
      line: line.slice(0, 500),
      error: `Line is not JSON: ${errorText(error)}`,
    }];
  }
  if (!isObj(value)) {
    return [{ kind: "invalid", line: line.slice(0, 500), error: "Line is not a JSON object" }];
  }
  const o = value;
  switch (o.type) {
    case "system": {
      const subtype = str(o.subtype) ?? "unknown";
      const sessionId = str(o.session_id);
      if (subtype === "init" && sessionId !== undefined) {
        const out: ClaudeOutput & { kind: "init" } = { kind: "init", sessionId };
        const model = str(o.model);
        if (model !== undefined) out.model = model;
        const cwd = str(o.cwd);
        if (cwd !== undefined) out.cwd = cwd;
        const memory = isObj(o.memory_paths) ? str(o.memory_paths.auto) : undefined;
        if (memory !== undefined) {
          const dir = memory.replace(/\/+$/, "").replace(/\/memory$/, "");
          if (dir !== memory.replace(/\/+$/, "")) out.projectDir = dir;
        }
        return [out];
      }
      return [{ kind: "system", subtype, message: o }];
    }
    case "user":
      return decodeUser(o);
    case "assistant": {
      const message = isObj(o.message) ? o.message : {};
      const content = Array.isArray(message.content) ? message.content : [];
      return [{
        kind: "assistant",
        messageId: str(message.id) ?? "",
        blocks: content.map(assistantBlock),
        parentToolUseId: parentOf(o),
      }];
    }
    case "result":
      return [decodeResult(o)];
    case "control_request": {
      const request = isObj(o.request) ? o.request : {};
      return [{
        kind: "control-request",
        requestId: str(o.request_id) ?? "",
        subtype: str(request.subtype) ?? "unknown",
        request,
      }];
    }
    case "control_response": {
      const response = isObj(o.response) ? o.response : {};
      const out: ClaudeOutput & { kind: "control-response" } = {
        kind: "control-response",
        requestId: str(response.request_id) ?? "",
        ok: response.subtype === "success",
      };
      if ("response" in response) out.response = response.response;
      const error = str(response.error);
      if (error !== undefined) out.error = error;
      return [out];
    }
    case "control_cancel_request":
      return [{ kind: "control-cancel", requestId: str(o.request_id) ?? "" }];
    case "command_lifecycle":
      return [{
        kind: "lifecycle",
        commandUuid: str(o.command_uuid) ?? "",
        state: str(o.state) ?? "unknown",
      }];
    default:
      return [{ kind: "other", type: str(o.type) ?? "unknown" }];
  }
}

// ---------------------------------------------------------------------------------------------
// stdin

/** A stream-json user message line (with `\n`), carrying a `uuid` Claude echoes back. */
export function encodeUserMessage(text: string, uuid: string): string {
  return JSON.stringify({
    type: "user",
    uuid,
    session_id: "",
    parent_tool_use_id: null,
    message: { role: "user", content: [{ type: "text", text }] },
  }) + "\n";
}

/** A control request line (`initialize`, `interrupt`, ...). */
export function encodeControlRequest(requestId: string, request: Obj): string {
  return JSON.stringify({ type: "control_request", request_id: requestId, request }) + "\n";
}

/** A successful control response line. */
export function encodeControlResponse(requestId: string, response: unknown): string {
  return JSON.stringify({
    type: "control_response",
    response: { subtype: "success", request_id: requestId, response },
  }) + "\n";
}

/** A failed control response line. */
export function encodeControlError(requestId: string, error: string): string {
  return JSON.stringify({
    type: "control_response",
    response: { subtype: "error", request_id: requestId, error },
  }) + "\n";
}

// ---------------------------------------------------------------------------------------------
// Session events

/** Cuts a text to `max` characters, saying how much was left out. */
export function clip(text: string, max = MAX_STEP_TEXT): string {
  if (text.length <= max) return text;
  return `${text.slice(0, max)}\u2026 [${text.length - max} more characters]`;
}

/** A one-line summary of a tool call's input, for the mirror. */
export function summarizeToolInput(tool: string, input: unknown): string {
  if (isObj(input)) {
    const pick = (key: string) => str(input[key]);
    const main = tool === "Bash"
      ? pick("command")
      : pick("file_path") ?? pick("notebook_path") ?? pick("pattern") ?? pick("url") ??
        pick("query") ?? pick("description") ?? pick("prompt");
    if (main !== undefined) return clip(`${tool}: ${main}`);
  }
  let json: string;
  try {
    json = JSON.stringify(input) ?? "";
  } catch {
    json = String(input);
  }
  return clip(`${tool}: ${json}`);
}

/** The interrupt marker Claude writes as a user message after an interrupt. */
export const INTERRUPT_MARKER = "[Request interrupted by user";

/**
 * How the synthetic user message Claude injects after a blocked Stop hook starts (`Stop hook
 * feedback:\n<the block's reason>`). It is not a prompt anyone sent: the runner mirrors the
 * messages it folded into the block itself, so the adapter reports nothing for it.
 */
export const STOP_FEEDBACK_PREFIX = "Stop hook feedback:";

/**
 * Turns decoded outputs into {@linkcode SessionEvent}s, each exactly once.
 *
 * Text of the main agent is held back until it is known whether it is the turn's final answer:
 * when more blocks follow it becomes a `step` of kind `text`; at the turn's `result` the final
 * text becomes the `response` (Claude's `result` field is authoritative). Subagent output
 * (`parent_tool_use_id` set) is never a response.
 */
export class StreamTranslator {
  #pendingText: string[] = [];
  #toolNames = new Map<string, string>();

  /** The events one output yields. */
  translate(output: ClaudeOutput): SessionEvent[] {
    switch (output.kind) {
      case "assistant":
        return this.#assistant(output);
      case "tool-result": {
        const tool = this.#toolNames.get(output.toolUseId);
        this.#toolNames.delete(output.toolUseId);
        const kind = output.parentToolUseId === null ? "tool_result" : "subagent_tool_result";
        const text = clip(output.isError ? `error: ${output.text}` : output.text);
        return [{ type: "step", kind, text, ...(tool !== undefined ? { tool } : {}) }];
      }
      case "user-text": {
        if (output.parentToolUseId !== null) return [];
        const events = this.#flushText();
        if (output.synthetic && output.text.startsWith(STOP_FEEDBACK_PREFIX)) return events;
        if (output.text.startsWith(INTERRUPT_MARKER)) {
          events.push({ type: "step", kind: "interrupted", text: output.text });
        } else {
          events.push({ type: "prompt", text: output.text });
        }
        return events;
      }
      case "result": {
        const events: SessionEvent[] = [];
        const final = output.text;
        for (const text of this.#pendingText) {
          if (final === undefined || final.trim() === "" || !final.includes(text.trim())) {
            events.push({ type: "step", kind: "text", text: clip(text) });
          }
        }
        this.#pendingText = [];
        if (final !== undefined && final.trim() !== "") {
          events.push({ type: "response", text: final });
        }
        const end: SessionEvent = { type: "turn-end", ok: output.ok, usage: output.usage };
        if (output.error !== undefined) end.error = output.error;
        events.push(end);
        return events;
      }
      default:
        return [];
    }
  }

  #flushText(): SessionEvent[] {
    const events: SessionEvent[] = this.#pendingText.map((text) => ({
      type: "step",
      kind: "text",
      text: clip(text),
    }));
    this.#pendingText = [];
    return events;
  }

  #assistant(output: ClaudeOutput & { kind: "assistant" }): SessionEvent[] {
    const sub = output.parentToolUseId !== null;
    const events: SessionEvent[] = [];
    for (const block of output.blocks) {
      if (block.type === "text") {
        if (block.text.trim() === "") continue;
        if (sub) events.push({ type: "step", kind: "subagent_text", text: clip(block.text) });
        else this.#pendingText.push(block.text);
      } else if (block.type === "thinking") {
        if (!sub) events.push(...this.#flushText());
        if (block.text.trim() !== "") events.push({ type: "reasoning", text: clip(block.text) });
      } else if (block.type === "tool_use") {
        if (!sub) events.push(...this.#flushText());
        this.#toolNames.set(block.id, block.name);
        events.push({
          type: "step",
          kind: sub ? "subagent_tool_use" : "tool_use",
          tool: block.name,
          text: summarizeToolInput(block.name, block.input),
        });
      }
    }
    return events;
  }
}
