/**
 * The runner's leveled logger, built on LogTape.
 *
 * One process serves one agent, so logging is configured once per process with
 * {@linkcode configureLogging}: records go to `session-mirror-<agent>.log` in the log dir
 * (size-rotated), as `[ISO-8601] LEVEL [component] message` lines or JSON lines. The level is
 * a mutable value read by a LogTape filter, so {@linkcode setLogLevel} changes it at run time
 * without reconfiguring. Registered secrets and bearer tokens are redacted from every record.
 * When the file cannot be written, error and fatal records still reach stderr.
 *
 * Modules log through {@linkcode getLogger}; before `configureLogging` runs (in unit tests, for
 * example) records go nowhere.
 *
 * @module
 */
import {
  configureSync,
  getLogger as getLogTapeLogger,
  type LogLevel as LogTapeLevel,
  type LogRecord,
  resetSync,
  type Sink,
} from "@logtape/logtape";
import { getRotatingFileSink } from "@logtape/file";
import { join } from "node:path";

/** The runner's log levels, least severe first. */
export const LOG_LEVELS = ["debug", "info", "warn", "error", "fatal"] as const;
/** One of {@linkcode LOG_LEVELS}. */
export type LogLevel = typeof LOG_LEVELS[number];
/** How a record is written: one text line, or one JSON object per line. */
export type LogFormat = "text" | "json";

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, fatal: 50 };
const FROM_LOGTAPE: Record<LogTapeLevel, LogLevel> = {
  trace: "debug",
  debug: "debug",
  info: "info",
  warning: "warn",
  error: "error",
  fatal: "fatal",
};
const ROOT = "agent-relay-runner";

/** Parses a level name (case-insensitive, surrounding blanks ignored); `undefined` if unknown. */
export function parseLogLevel(value: string | undefined | null): LogLevel | undefined {
  if (value === undefined || value === null) return undefined;
  const v = value.trim().toLowerCase();
  return (LOG_LEVELS as readonly string[]).includes(v) ? v as LogLevel : undefined;
}

/** Whether a record at `level` passes a threshold of `threshold`. */
export function levelEnabled(level: LogLevel, threshold: LogLevel): boolean {
  return RANK[level] >= RANK[threshold];
}

/** The file-name-safe form of an agent id: `[^a-zA-Z0-9_.-]` → `_`, at most 180 characters. */
export function safeLogName(agentId: string): string {
  return agentId.replace(/[^a-zA-Z0-9_.-]/g, "_").slice(0, 180);
}

/** The per-agent log file's name inside the log dir. */
export function logFileName(agentId: string): string {
  return `session-mirror-${safeLogName(agentId)}.log`;
}

// ---------------------------------------------------------------------------------------------
// Mutable process state: the level threshold and the set of secrets to redact.

let currentLevel: LogLevel = "info";
const secrets = new Set<string>();
const listeners = new Set<(entry: LogEntry) => void>();

/** The current level threshold. */
export function getLogLevel(): LogLevel {
  return currentLevel;
}

/** Changes the level threshold at run time; returns the previous one. */
export function setLogLevel(level: LogLevel): LogLevel {
  const previous = currentLevel;
  currentLevel = level;
  return previous;
}

/** Registers a secret (a token, the control secret) to be replaced by `[redacted]` everywhere. */
export function addSecret(secret: string | undefined): void {
  if (secret && secret.length >= 4) secrets.add(secret);
}

/** Removes every registered secret (tests). */
export function clearSecrets(): void {
  secrets.clear();
}

const BEARER = /\b(Bearer\s+)[A-Za-z0-9._~+/=-]+/gi;

/** Replaces registered secrets and any `Bearer <token>` in `text` with `[redacted]`. */
export function redact(text: string): string {
  let out = text.replace(BEARER, "$1[redacted]");
  for (const secret of secrets) {
    if (out.includes(secret)) out = out.split(secret).join("[redacted]");
  }
  return out;
}

/** One formatted log record, as handed to {@linkcode onLogEntry} listeners. */
export interface LogEntry {
  /** Epoch milliseconds. */
  at: number;
  level: LogLevel;
  component: string;
  /** The message, redacted and on one line. */
  message: string;
}

/** Subscribes to every record that passes the level filter (the `/monitor` feed). */
export function onLogEntry(listener: (entry: LogEntry) => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function oneLine(message: string): string {
  return message.replace(/\r?\n|\r/g, " ⏎ ");
}

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]/g;

function entryOf(record: LogRecord): LogEntry {
  const raw = record.properties["message"];
  const text = typeof raw === "string"
    ? raw
    : record.message.map((part) => typeof part === "string" ? part : String(part)).join("");
  return {
    at: record.timestamp,
    level: FROM_LOGTAPE[record.level],
    component: record.category.slice(1).join(".") || "runner",
    message: oneLine(redact(text)).replace(ANSI, ""),
  };
}

/** Formats an entry as `[ISO-8601] LEVEL [component] message\n`. */
export function formatText(entry: LogEntry): string {
  const level = entry.level.toUpperCase().padEnd(5);
  return `[${new Date(entry.at).toISOString()}] ${level} [${entry.component}] ${entry.message}\n`;
}

/** Formats an entry as one JSON object and a newline. */
export function formatJson(entry: LogEntry): string {
  return JSON.stringify({
    time: new Date(entry.at).toISOString(),
    level: entry.level,
    component: entry.component,
    message: entry.message,
  }) + "\n";
}

// ---------------------------------------------------------------------------------------------
// The logger modules use.

/** A component's logger. Messages are plain text: no template placeholders. */
export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  fatal(message: string): void;
  /** Logs at a level given as a value. */
  log(level: LogLevel, message: string): void;
  /** Whether a record at `level` would be written now. */
  enabled(level: LogLevel): boolean;
}

/** The logger for one component (`outbox`, `control`, `bus`, ...). */
export function getLogger(component: string): Logger {
  const inner = getLogTapeLogger([ROOT, component]);
  const log = (level: LogLevel, message: string) => {
    if (!levelEnabled(level, currentLevel)) return;
    const props = { message };
    switch (level) {
      case "debug":
        return inner.debug("{message}", props);
      case "info":
        return inner.info("{message}", props);
      case "warn":
        return inner.warn("{message}", props);
      case "error":
        return inner.error("{message}", props);
      case "fatal":
        return inner.fatal("{message}", props);
    }
  };
  return {
    debug: (m) => log("debug", m),
    info: (m) => log("info", m),
    warn: (m) => log("warn", m),
    error: (m) => log("error", m),
    fatal: (m) => log("fatal", m),
    log,
    enabled: (level) => levelEnabled(level, currentLevel),
  };
}

/** Options of {@linkcode configureLogging}. */
export interface LoggingOptions {
  /** The log directory; created if missing. */
  logDir: string;
  agentId: string;
  level: LogLevel;
  format?: LogFormat;
  /** Rotate when the file would grow past this many bytes. Default 10 MiB. */
  maxBytes?: number;
  /** How many files to keep, the live one included. Default 5. */
  maxFiles?: number;
  /** Where error and fatal records go when the file cannot be written. Default stderr. */
  fallback?: (line: string) => void;
}

/** What {@linkcode configureLogging} set up. */
export interface LoggingHandle {
  /** The log file's path. */
  logFile: string;
  /** Why the file sink could not be opened, when it could not (records then go to stderr). */
  fileError?: string;
  /** Flushes and detaches every sink. */
  close(): void;
}

function stderrLine(line: string): void {
  try {
    Deno.stderr.writeSync(new TextEncoder().encode(line));
  } catch {
    // Nowhere left to report to.
  }
}

/**
 * Configures the process's logging: the rotating per-agent file, the level filter, redaction
 * and the stderr fallback. Calling it again replaces the previous configuration.
 */
export function configureLogging(options: LoggingOptions): LoggingHandle {
  currentLevel = options.level;
  const format = options.format === "json" ? formatJson : formatText;
  const fallback = options.fallback ?? stderrLine;
  const logFile = join(options.logDir, logFileName(options.agentId));
  let fileSink: (Sink & Disposable) | undefined;
  let fileError: string | undefined;
  try {
    Deno.mkdirSync(options.logDir, { recursive: true, mode: 0o700 });
    fileSink = getRotatingFileSink(logFile, {
      maxSize: options.maxBytes ?? 10 * 1024 * 1024,
      // LogTape counts rotated files only; ours counts the live one too.
      maxFiles: Math.max(1, (options.maxFiles ?? 5) - 1),
      bufferSize: 0,
      formatter: (record) => format(entryOf(record)),
    });
    try {
      Deno.chmodSync(logFile, 0o600);
    } catch {
      // Best effort: the file may be on a filesystem without modes.
    }
  } catch (error) {
    fileError = `cannot open log file ${logFile}: ${
      error instanceof Error ? error.message : error
    }`;
  }
  // A rotation starts a new live file with the default mode: make it 0600 again.
  let lastSize = 0;
  const keepPrivate = () => {
    try {
      const size = Deno.statSync(logFile).size;
      if (size < lastSize) Deno.chmodSync(logFile, 0o600);
      lastSize = size;
    } catch {
      // Best effort.
    }
  };
  const sink: Sink = (record) => {
    const entry = entryOf(record);
    for (const listener of listeners) {
      try {
        listener(entry);
      } catch {
        // A listener must never break logging.
      }
    }
    let written = false;
    if (fileSink) {
      try {
        fileSink(record);
        written = true;
        keepPrivate();
      } catch {
        written = false;
      }
    }
    if (!written && levelEnabled(entry.level, "error")) fallback(format(entry));
  };
  resetSync();
  configureSync({
    reset: true,
    sinks: { main: sink },
    filters: { level: (record) => levelEnabled(FROM_LOGTAPE[record.level], currentLevel) },
    loggers: [
      { category: [ROOT], sinks: ["main"], filters: ["level"], lowestLevel: "trace" },
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "fatal" },
    ],
  });
  if (fileError) {
    fallback(
      formatText({ at: Date.now(), level: "error", component: "logger", message: fileError }),
    );
  }
  return {
    logFile,
    ...(fileError ? { fileError } : {}),
    close() {
      resetSync();
      try {
        fileSink?.[Symbol.dispose]();
      } catch {
        // Already closed.
      }
      fileSink = undefined;
    },
  };
}
