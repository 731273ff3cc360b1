/**
 * How `attach` shows what happens: each `/monitor` event and each relay message about the agent
 * as one readable line (`HH:MM:SS tag text`), every control character escaped, coloured by kind
 * when colours are on.
 *
 * @module
 */
import type { Message } from "../types.ts";
import { escapeText } from "../util/mod.ts";

/** The kinds of line, each with its colour. */
export type LineKind =
  | "prompt"
  | "message"
  | "step"
  | "think"
  | "reply"
  | "status"
  | "warn"
  | "error"
  | "info"
  | "you";

const COLOURS: Record<LineKind, string> = {
  prompt: "36", // cyan
  message: "36",
  step: "34", // blue
  think: "2", // dim
  reply: "32", // green
  status: "33", // yellow
  warn: "33",
  error: "31", // red
  info: "2",
  you: "35", // magenta
};

/** The longest text a line shows; the rest is cut with `...`. */
export const MAX_LINE_TEXT = 2_000;

/** One line to print. */
export interface ViewLine {
  at: number;
  kind: LineKind;
  text: string;
}

/** Renders lines, with or without colours. */
export class AttachView {
  readonly #colour: boolean;

  constructor(options: { colour: boolean }) {
    this.#colour = options.colour;
  }

  /** `HH:MM:SS tag     text`, escaped, coloured by kind. */
  render(line: ViewLine): string {
    const time = Number.isFinite(line.at)
      ? new Date(line.at).toISOString().slice(11, 19)
      : "--:--:--";
    let text = escapeText(line.text);
    if (text.length > MAX_LINE_TEXT) text = `${text.slice(0, MAX_LINE_TEXT - 1)}\u2026`;
    const tag = line.kind.padEnd(7);
    if (!this.#colour) return `${time} ${tag} ${text}`;
    return `\x1b[2m${time}\x1b[0m \x1b[${COLOURS[line.kind]}m${tag}\x1b[0m ${text}`;
  }
}

function obj(value: unknown): Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as Record<string, unknown>
    : {};
}

function epoch(value: unknown, fallback: number): number {
  if (typeof value === "number" && Number.isFinite(value)) return value;
  if (typeof value === "string") {
    const t = Date.parse(value);
    if (!Number.isNaN(t)) return t;
  }
  return fallback;
}

/** The line for one `/monitor` event, or `undefined` for events not shown (info logs, hooks). */
export function monitorLine(event: Record<string, unknown>, now: number): ViewLine | undefined {
  const at = epoch(event["at"], now);
  switch (event["type"]) {
    case "status": {
      const previous = typeof event["previous"] === "string" ? `${event["previous"]} \u2192 ` : "";
      return { at, kind: "status", text: `${previous}${String(event["status"])}` };
    }
    case "log": {
      const level = String(event["level"]);
      if (level !== "warn" && level !== "error" && level !== "fatal") return undefined;
      return {
        at,
        kind: level === "warn" ? "warn" : "error",
        text: `[${String(event["component"])}] ${String(event["message"])}`,
      };
    }
    case "hook-fatal":
      return {
        at,
        kind: "error",
        text: `hook ${String(event["hook"])} failed: ${String(event["error"])}`,
      };
    default:
      return undefined;
  }
}

/** The line for one relay message about `agentId`, or `undefined` when it is not about it. */
export function messageLine(message: Message, agentId: string): ViewLine | undefined {
  if (message.to !== agentId && message.from !== agentId) return undefined;
  const at = epoch(message.createdAt, Date.now());
  const body = message.body;
  if (message.kind !== "session") {
    if (message.from === agentId) {
      const to = message.replyTo !== undefined ? ` (reply to #${message.replyTo})` : "";
      return {
        at,
        kind: "reply",
        text: `${agentId} \u2192 ${message.to} #${message.id}${to}: ${body}`,
      };
    }
    return {
      at,
      kind: "message",
      text: `${message.from} \u2192 ${agentId} #${message.id}: ${body}`,
    };
  }
  if (message.to !== agentId) return undefined;
  const session = obj(obj(message.payload)["session"]);
  const type = typeof session["type"] === "string" ? session["type"] : "session";
  switch (type) {
    case "prompt": {
      const id = typeof session["messageId"] === "number" ? ` (#${session["messageId"]})` : "";
      return { at, kind: "prompt", text: `from ${message.from}${id}: ${body}` };
    }
    case "step": {
      const tool = typeof session["tool"] === "string" ? `[${session["tool"]}] ` : "";
      return { at, kind: "step", text: `${tool}${body}` };
    }
    case "reasoning":
      return { at, kind: "think", text: body };
    case "response":
      return { at, kind: "reply", text: body };
    case "error":
      return { at, kind: "error", text: body };
    default:
      return { at, kind: "info", text: `${type}: ${body}` };
  }
}
