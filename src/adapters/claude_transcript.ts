/**
 * Claude Code session transcripts (`<project dir>/<session id>.jsonl`): reading them tolerantly
 * and measuring the `context_ratio` insight sent at session end.
 *
 * context_ratio = information-gathering tool calls / all tool calls of the session. A call
 * gathers information when it only reads: the tools in {@linkcode GATHERING_TOOLS} (Read, Grep,
 * Glob, LS, WebFetch, WebSearch, ...), an `Explore` subagent, or a `Bash` command every part of
 * which (split on `|`, `&&`, `||`, `;`) starts with a read-only program
 * ({@linkcode READ_ONLY_COMMANDS}, plus read-only `git` subcommands). Everything else (Edit,
 * Write, builds, tests, other subagents) acts. Each `tool_use` block counts once (by id), also
 * when a resumed session repeats lines; only `assistant` lines are read, so the request copies
 * Claude keeps in the transcript never count.
 *
 * @module
 */

/** Tools that only gather information. */
export const GATHERING_TOOLS: ReadonlySet<string> = new Set([
  "Read",
  "Grep",
  "Glob",
  "LS",
  "WebFetch",
  "WebSearch",
  "NotebookRead",
  "ToolSearch",
  "ListMcpResourcesTool",
  "ReadMcpResourceTool",
]);

/** Programs whose invocation in a `Bash` call only reads. */
export const READ_ONLY_COMMANDS: ReadonlySet<string> = new Set([
  "cat",
  "head",
  "tail",
  "less",
  "more",
  "ls",
  "tree",
  "find",
  "fd",
  "grep",
  "egrep",
  "fgrep",
  "rg",
  "ag",
  "ack",
  "wc",
  "file",
  "stat",
  "du",
  "df",
  "pwd",
  "which",
  "whereis",
  "type",
  "echo",
  "printf",
  "printenv",
  "date",
  "uname",
  "id",
  "whoami",
  "diff",
  "cmp",
  "jq",
  "sort",
  "uniq",
  "cut",
  "tr",
  "column",
  "nl",
  "od",
  "xxd",
  "hexdump",
  "realpath",
  "readlink",
  "basename",
  "dirname",
  "true",
  "ps",
]);

/** `git` subcommands that only read. */
export const READ_ONLY_GIT: ReadonlySet<string> = new Set([
  "log",
  "show",
  "diff",
  "status",
  "blame",
  "grep",
  "ls-files",
  "ls-tree",
  "rev-parse",
  "branch",
  "remote",
  "describe",
  "shortlog",
  "reflog",
  "cat-file",
]);

/** One parsed transcript line (a JSON object), with its 1-based line number. */
export interface TranscriptLine {
  line: number;
  value: Record<string, unknown>;
}

/** A transcript read tolerantly: the objects, and the lines that were not JSON objects. */
export interface ParsedTranscript {
  lines: TranscriptLine[];
  /** 1-based numbers of lines that were not JSON objects (a torn last line, for example). */
  badLines: number[];
}

/** A tool call found in a transcript. */
export interface ToolCall {
  id: string;
  name: string;
  input: unknown;
  gathering: boolean;
  /** From a subagent (a sidechain line). */
  sidechain: boolean;
}

/** The context_ratio metric (the insight's `value`). */
export interface ContextRatioMetric {
  /** gatheringCalls / totalToolCalls, 0 to 1. */
  ratio: number;
  gatheringCalls: number;
  totalToolCalls: number;
  /** Calls per tool name. */
  byTool: Record<string, number>;
}

/** What the session did (the insight's `outcome`). */
export interface SessionOutcome {
  /** Prompts from outside (not tool results, not hook feedback). */
  userPrompts: number;
  assistantMessages: number;
  toolErrors: number;
  /** Whether the session ever ended a turn by interrupt. */
  interrupted: boolean;
  /** From the first to the last timestamp, when both are known. */
  durationMs?: number;
}

/** The result of {@linkcode analyzeSession}. */
export interface SessionAnalysis {
  metric: ContextRatioMetric;
  outcome: SessionOutcome;
  toolCalls: ToolCall[];
}

type Obj = Record<string, unknown>;

function isObj(value: unknown): value is Obj {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Parses JSONL text; bad lines are listed, never thrown. */
export function parseTranscript(jsonl: string): ParsedTranscript {
  const lines: TranscriptLine[] = [];
  const badLines: number[] = [];
  const raw = jsonl.split("\n");
  for (let i = 0; i < raw.length; i++) {
    const text = raw[i]?.trim() ?? "";
    if (text === "") continue;
    try {
      const value: unknown = JSON.parse(text);
      if (isObj(value)) lines.push({ line: i + 1, value });
      else badLines.push(i + 1);
    } catch {
      badLines.push(i + 1);
    }
  }
  return { lines, badLines };
}

/** Splits a shell command into its simple commands (on `|`, `||`, `&&`, `;`, newlines). */
export function splitShellCommand(command: string): string[] {
  return command
    .split(/\|\||&&|[|;\n]/)
    .map((part) => part.trim())
    .filter((part) => part !== "");
}

function firstWords(part: string): string[] {
  // Skip leading `VAR=value` assignments and a `sudo`/`time`/`command` prefix.
  const words = part.split(/\s+/).filter((w) => w !== "");
  while (words.length > 0 && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[0] ?? "")) words.shift();
  while (words.length > 0 && ["sudo", "time", "command", "nice"].includes(words[0] ?? "")) {
    words.shift();
  }
  return words;
}

/** Whether a `Bash` command only reads (every simple command in it starts with a reader). */
export function isReadOnlyCommand(command: string): boolean {
  const parts = splitShellCommand(command);
  if (parts.length === 0) return false;
  for (const part of parts) {
    if (/(^|[^>&0-9])>>?(?!&)/.test(part.replace(/2>&1|>\s*\/dev\/null/g, ""))) return false;
    const words = firstWords(part);
    const program = (words[0] ?? "").replace(/^.*\//, "");
    if (program === "git") {
      const sub = words.slice(1).find((w) => !w.startsWith("-"));
      if (sub === undefined || !READ_ONLY_GIT.has(sub)) return false;
      continue;
    }
    if (program === "find" && words.some((w) => /^-(delete|exec|execdir|ok|fprint)/.test(w))) {
      return false;
    }
    if (program === "sed") {
      if (!words.includes("-n") || words.some((w) => w.startsWith("-i"))) return false;
      continue;
    }
    if (!READ_ONLY_COMMANDS.has(program)) return false;
  }
  return true;
}

/** Whether a tool call only gathers information. */
export function isGatheringCall(name: string, input: unknown): boolean {
  if (GATHERING_TOOLS.has(name)) return true;
  if (name.startsWith("mcp__") && /__(read|get|list|search|fetch|query)/i.test(name)) return true;
  if (!isObj(input)) return false;
  if (name === "Bash" && typeof input.command === "string") {
    return isReadOnlyCommand(input.command);
  }
  if ((name === "Task" || name === "Agent") && input.subagent_type === "Explore") return true;
  return false;
}

function contentBlocks(value: Obj): unknown[] {
  const message = isObj(value.message) ? value.message : undefined;
  const content = message?.content;
  return Array.isArray(content) ? content : [];
}

/** The tool calls of a transcript, in order, each once. */
export function toolCallsOf(transcript: ParsedTranscript): ToolCall[] {
  const calls: ToolCall[] = [];
  const seen = new Set<string>();
  for (const { value } of transcript.lines) {
    if (value.type !== "assistant") continue;
    for (const block of contentBlocks(value)) {
      if (!isObj(block) || block.type !== "tool_use") continue;
      const id = typeof block.id === "string" ? block.id : "";
      if (id !== "" && seen.has(id)) continue;
      if (id !== "") seen.add(id);
      const name = typeof block.name === "string" ? block.name : "unknown";
      calls.push({
        id,
        name,
        input: block.input,
        gathering: isGatheringCall(name, block.input),
        sidechain: value.isSidechain === true,
      });
    }
  }
  return calls;
}

function outcomeOf(transcript: ParsedTranscript): SessionOutcome {
  let userPrompts = 0;
  let toolErrors = 0;
  let interrupted = false;
  const assistantIds = new Set<string>();
  let first: number | undefined;
  let last: number | undefined;
  for (const { value } of transcript.lines) {
    if (typeof value.timestamp === "string") {
      const t = Date.parse(value.timestamp);
      if (Number.isFinite(t)) {
        first = first === undefined ? t : Math.min(first, t);
        last = last === undefined ? t : Math.max(last, t);
      }
    }
    if (value.type === "assistant") {
      const message = isObj(value.message) ? value.message : {};
      assistantIds.add(typeof message.id === "string" ? message.id : `line-${assistantIds.size}`);
      continue;
    }
    if (value.type !== "user" || value.isSidechain === true) continue;
    const message = isObj(value.message) ? value.message : {};
    const blocks = contentBlocks(value);
    let hasToolResult = false;
    for (const block of blocks) {
      if (isObj(block) && block.type === "tool_result") {
        hasToolResult = true;
        if (block.is_error === true) toolErrors++;
      }
    }
    if (hasToolResult) continue;
    const text = typeof message.content === "string"
      ? message.content
      : blocks.map((b) => (isObj(b) && typeof b.text === "string" ? b.text : "")).join("");
    if (text.startsWith("[Request interrupted")) {
      interrupted = true;
      continue;
    }
    if (value.isMeta === true || value.isSynthetic === true || text === "") continue;
    userPrompts++;
  }
  const outcome: SessionOutcome = {
    userPrompts,
    assistantMessages: assistantIds.size,
    toolErrors,
    interrupted,
  };
  if (first !== undefined && last !== undefined) outcome.durationMs = last - first;
  return outcome;
}

/**
 * Measures a session transcript. `undefined` when the session made no tool calls (nothing
 * substantive to measure), as the upstream runner does.
 */
export function analyzeSession(jsonl: string): SessionAnalysis | undefined {
  const transcript = parseTranscript(jsonl);
  const toolCalls = toolCallsOf(transcript);
  if (toolCalls.length === 0) return undefined;
  const byTool: Record<string, number> = {};
  let gatheringCalls = 0;
  for (const call of toolCalls) {
    byTool[call.name] = (byTool[call.name] ?? 0) + 1;
    if (call.gathering) gatheringCalls++;
  }
  return {
    metric: {
      ratio: gatheringCalls / toolCalls.length,
      gatheringCalls,
      totalToolCalls: toolCalls.length,
      byTool,
    },
    outcome: outcomeOf(transcript),
    toolCalls,
  };
}

/**
 * Where Claude keeps a session's transcript: `<config dir>/projects/<cwd, every character
 * other than a letter or digit replaced by "-">/<session id>.jsonl`. The config dir is
 * `$CLAUDE_CONFIG_DIR` or `$HOME/.claude`. Prefer the path Claude reports (hook payloads'
 * `transcript_path`, or the init line's memory dir) when there is one.
 */
export function transcriptPathFor(
  cwd: string,
  sessionId: string,
  env: { HOME?: string | undefined; CLAUDE_CONFIG_DIR?: string | undefined },
): string | undefined {
  const config = env.CLAUDE_CONFIG_DIR ?? (env.HOME ? `${env.HOME}/.claude` : undefined);
  if (config === undefined) return undefined;
  return `${config.replace(/\/+$/, "")}/projects/${
    cwd.replace(/[^a-zA-Z0-9]/g, "-")
  }/${sessionId}.jsonl`;
}
