/**
 * The runner's leveled logger.
 *
 * One process serves one agent, so logging is configured once per process with
 * {@linkcode configureLogging}: records go to `session-mirror-<agent>.log` in the log dir, or the
 * `--log-file` (size-rotated: `--log-max-bytes`, `--log-files`), or to stderr (`--log-file -`),
 * as `[ISO-8601] LEVEL [component] message key=value...` lines or JSON lines carrying `time`,
 * `level`, `agentId`, `pid`, `component`, `message` and the record's fields. The level is a
 * mutable value read by every call, so {@linkcode setLogLevel} changes it at run time
 * without reconfiguring. Registered secret values and `Bearer <value>` are redacted from every
 * record (ordinary words such as "token" are not). Every control, separator and bidi character
 * is escaped in text lines and written as a `\u` escape in JSON lines, so no record can forge
 * another or hide text. When the file cannot be written, error and fatal records still reach
 * stderr.
 *
 * Modules log through {@linkcode getLogger}; before `configureLogging` runs (in unit tests, for
 * example) records go nowhere.
 *
 * The file sink is this module's own (append, rotate by size, fsync each record), not a logging
 * library's: LogTape and its file sink cost every process that imports this module (the
 * launcher for its level names, the Worker) about 15 MiB of memory and 40 ms of start
 * (docs/performance.md), for a dispatch and a rotation this module already specified in full.
 *
 * @module
 */
import { dirname, escapeText, join, resolve } from "./util/mod.ts";
import { checkNotSymlink, chmodNoFollow } from "./util/mod.ts";

/** The runner's log levels, least severe first. */
export const LOG_LEVELS = ["debug", "info", "warn", "error", "fatal"] as const;
/** One of {@linkcode LOG_LEVELS}. */
export type LogLevel = typeof LOG_LEVELS[number];
/** How a record is written: one text line, or one JSON object per line. */
export type LogFormat = "text" | "json";

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, fatal: 50 };

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

/** The file-name-safe form of an agent id: `[^a-zA-Z0-9_.-]` -> `_`, at most 180 characters. */
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

const BEARER = /\b(Bearer\s+)([A-Za-z0-9._~+/=-]+)/gi;

/**
 * Whether the word after "Bearer" is a credential rather than prose: it holds a character other
 * than a letter, or is 16 characters or more, or mixes cases past its first letter. "missing
 * bearer token" keeps its word; "Bearer abc.def-123" and "Bearer AbCdEfGh" do not.
 */
function looksLikeCredential(value: string): boolean {
  if (/[^A-Za-z]/.test(value) || value.length >= 16) return true;
  const tail = value.slice(1);
  return /[a-z]/.test(tail) && /[A-Z]/.test(tail);
}

/**
 * Replaces registered secret values and the value of any `Bearer <value>` in `text` with
 * `[redacted]`. Only values are redacted: the words "token", "secret" or "bearer" stay.
 */
export function redact(text: string): string {
  let out = text.replace(
    BEARER,
    (all, scheme: string, value: string) =>
      looksLikeCredential(value) ? `${scheme}[redacted]` : all,
  );
  for (const secret of secrets) {
    if (out.includes(secret)) out = out.split(secret).join("[redacted]");
  }
  return out;
}

/** Structured fields of a record: written as `key=value` in text lines, as keys in JSON lines. */
export type LogFields = Record<string, unknown>;

/** One formatted log record, as handed to {@linkcode onLogEntry} listeners. */
export interface LogEntry {
  /** Epoch milliseconds. */
  at: number;
  level: LogLevel;
  component: string;
  /** The message, redacted and on one line (still holding other control characters). */
  message: string;
  /** The record's structured fields, when it has any (string values redacted). */
  fields?: LogFields;
}

/** Subscribes to every record that passes the level filter (the `/monitor` feed). */
export function onLogEntry(listener: (entry: LogEntry) => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function oneLine(message: string): string {
  return message.replace(/\r?\n|\r/g, " \u23ce ");
}

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]/g;

/** Field names a record's own fields may not take over in JSON lines. */
const RESERVED = new Set(["time", "level", "agentId", "pid", "component", "message"]);

function redactFields(fields: unknown): LogFields | undefined {
  if (typeof fields !== "object" || fields === null) return undefined;
  const out: LogFields = {};
  let any = false;
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    out[key] = typeof value === "string" ? redact(value) : value;
    any = true;
  }
  return any ? out : undefined;
}

/** One record, as a logger call makes it: stamped now, redacted, on one line. */
function entryOf(
  component: string,
  level: LogLevel,
  text: string,
  rawFields: LogFields | undefined,
): LogEntry {
  const fields = redactFields(rawFields);
  return {
    at: Date.now(),
    level,
    component: component || "runner",
    message: oneLine(redact(text)).replace(ANSI, ""),
    ...(fields ? { fields } : {}),
  };
}

/** Where records go once {@linkcode configureLogging} ran; nowhere before. */
type Sink = (entry: LogEntry) => void;
let installed: Sink | undefined;

/** Who is logging: added to every JSON line. Set by {@linkcode configureLogging}. */
const identity: { agentId: string | undefined; pid: number } = { agentId: undefined, pid: 0 };

function fieldText(value: unknown): string {
  let text: string;
  try {
    text = typeof value === "string" ? value : JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  text = escapeText(redact(text));
  return text === "" || /[\s"=]/.test(text) ? `"${text.replace(/"/g, '\\"')}"` : text;
}

/**
 * Formats an entry as `[ISO-8601] LEVEL [component] message key=value...\n`, every control,
 * separator and bidi character escaped (`\n`, `\u{0}`), so the line is one line of plain text.
 */
export function formatText(entry: LogEntry): string {
  const level = entry.level.toUpperCase().padEnd(5);
  const fields = Object.entries(entry.fields ?? {})
    .map(([key, value]) => ` ${escapeText(key).replace(/[\s=]/g, "_")}=${fieldText(value)}`)
    .join("");
  return `[${new Date(entry.at).toISOString()}] ${level} [${escapeText(entry.component)}] ${
    escapeText(entry.message)
  }${fields}\n`;
}

const JSON_UNSAFE = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * Formats an entry as one JSON object and a newline: `time`, `level`, `agentId`, `pid`,
 * `component`, `message`, then the record's fields (a field named like one of those is kept as
 * `field.<name>`). JSON.stringify escapes C0 controls; DEL, C1 controls, U+2028/U+2029 and bidi
 * controls are written as `\uXXXX` too, so the line holds no raw control character.
 */
export function formatJson(entry: LogEntry): string {
  const record: Record<string, unknown> = {
    time: new Date(entry.at).toISOString(),
    level: entry.level,
    ...(identity.agentId !== undefined ? { agentId: identity.agentId } : {}),
    pid: identity.pid || Deno.pid,
    component: entry.component,
    message: entry.message,
  };
  for (const [key, value] of Object.entries(entry.fields ?? {})) {
    record[RESERVED.has(key) ? `field.${key}` : key] = value;
  }
  let text: string;
  try {
    text = JSON.stringify(record);
  } catch {
    text = JSON.stringify({ ...record, fields: "[unserializable]" });
  }
  return text.replace(JSON_UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`) +
    "\n";
}

// ---------------------------------------------------------------------------------------------
// The logger modules use.

/**
 * A component's logger. Messages are plain text: no template placeholders. `fields` are
 * structured values (`messageId`, `seq`...): `key=value` in text lines, keys in JSON lines.
 */
export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  fatal(message: string, fields?: LogFields): void;
  /** Logs at a level given as a value. */
  log(level: LogLevel, message: string, fields?: LogFields): void;
  /** Whether a record at `level` would be written now. */
  enabled(level: LogLevel): boolean;
}

/** The logger for one component (`outbox`, `control`, `bus`, ...). */
export function getLogger(component: string): Logger {
  const log = (level: LogLevel, message: string, fields?: LogFields) => {
    if (!levelEnabled(level, currentLevel)) return;
    const sink = installed;
    if (!sink) return;
    try {
      sink(entryOf(component, level, message, fields));
    } catch {
      // A log call never throws.
    }
  };
  return {
    debug: (m, f) => log("debug", m, f),
    info: (m, f) => log("info", m, f),
    warn: (m, f) => log("warn", m, f),
    error: (m, f) => log("error", m, f),
    fatal: (m, f) => log("fatal", m, f),
    log,
    enabled: (level) => levelEnabled(level, currentLevel),
  };
}

/** The default rotation: a file grows to 10 MiB... */
export const DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024;
/** ...and 5 files are kept, the live one included. */
export const DEFAULT_LOG_FILES = 5;

/** Options of {@linkcode configureLogging}. */
export interface LoggingOptions {
  /** The log directory; created if missing. */
  logDir: string;
  agentId: string;
  level: LogLevel;
  format?: LogFormat;
  /**
   * The log file (`--log-file`): a path, or `-` for stderr. Default
   * `<logDir>/session-mirror-<agent>.log`.
   */
  logFile?: string;
  /** Rotate when the file would grow past this many bytes. Default 10 MiB. */
  maxBytes?: number;
  /** How many files to keep, the live one included. Default 5. */
  maxFiles?: number;
  /** Where error and fatal records go when the file cannot be written. Default stderr. */
  fallback?: (line: string) => void;
  /** Where records go with `logFile: "-"`. Default stderr. */
  stderr?: (line: string) => void;
}

/** The logging part of a run's configuration (`RunConfig`), accepted as it is. */
export interface LoggingConfig {
  logDir: string;
  agentId: string;
  logLevel: LogLevel;
  logFormat: LogFormat;
  logFile?: string;
  logMaxBytes?: number;
  logFiles?: number;
}

function loggingOptions(options: LoggingOptions | LoggingConfig): LoggingOptions {
  if (!("logLevel" in options)) return options;
  return {
    logDir: options.logDir,
    agentId: options.agentId,
    level: options.logLevel,
    format: options.logFormat,
    ...(options.logFile !== undefined ? { logFile: options.logFile } : {}),
    ...(options.logMaxBytes !== undefined ? { maxBytes: options.logMaxBytes } : {}),
    ...(options.logFiles !== undefined ? { maxFiles: options.logFiles } : {}),
  };
}

/** What {@linkcode configureLogging} set up. */
export interface LoggingHandle {
  /** The log file's path, or `-` when records go to stderr. */
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
 * Configures the process's logging: the rotating per-agent file (or stderr), the level filter,
 * redaction and the stderr fallback. Takes {@linkcode LoggingOptions} or the run's configuration
 * itself. Calling it again replaces the previous configuration.
 */
export function configureLogging(input: LoggingOptions | LoggingConfig): LoggingHandle {
  const options = loggingOptions(input);
  currentLevel = options.level;
  identity.agentId = options.agentId;
  identity.pid = Deno.pid;
  const format = options.format === "json" ? formatJson : formatText;
  const fallback = options.fallback ?? stderrLine;
  if (options.logFile === "-") return configureStderr(options.stderr ?? stderrLine, format);
  const logFile = options.logFile !== undefined
    ? resolve(options.logFile)
    : join(options.logDir, logFileName(options.agentId));
  let fileSink: RotatingFile | undefined;
  let fileError: string | undefined;
  try {
    Deno.mkdirSync(dirname(logFile), { recursive: true, mode: 0o700 });
    // A symlink planted at the log file would have log lines appended to its target.
    checkNotSymlink(logFile);
    fileSink = openRotatingFile(logFile, {
      maxSize: options.maxBytes ?? DEFAULT_LOG_MAX_BYTES,
      // Rotated files kept: our count includes the live one.
      rotated: Math.max(1, (options.maxFiles ?? DEFAULT_LOG_FILES) - 1),
    });
    try {
      chmodNoFollow(logFile, 0o600);
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
      if (size < lastSize) chmodNoFollow(logFile, 0o600);
      lastSize = size;
    } catch {
      // Best effort.
    }
  };
  const sink: Sink = (entry) => {
    publish(entry);
    let written = false;
    if (fileSink) {
      try {
        fileSink.write(format(entry));
        written = true;
        keepPrivate();
      } catch {
        written = false;
      }
    }
    if (!written && levelEnabled(entry.level, "error")) fallback(format(entry));
  };
  install(sink);
  if (fileError) {
    fallback(
      formatText({ at: Date.now(), level: "error", component: "logger", message: fileError }),
    );
  }
  return {
    logFile,
    ...(fileError ? { fileError } : {}),
    close() {
      installed = undefined;
      try {
        fileSink?.close();
      } catch {
        // Already closed.
      }
      fileSink = undefined;
    },
  };
}

function publish(entry: LogEntry): void {
  for (const listener of listeners) {
    try {
      listener(entry);
    } catch {
      // A listener must never break logging.
    }
  }
}

function install(sink: Sink): void {
  installed = sink;
}

/** The log file: appended to, fsynced after each record, rotated by size. */
interface RotatingFile {
  /** Writes one formatted record (rotating first when it would pass the size); throws. */
  write(text: string): void;
  close(): void;
}

/**
 * Opens `path` for appending. A record that would take the file past `maxSize` bytes first
 * rotates it: `path.N-1` -> `path.N` ... `path` -> `path.1`, keeping `rotated` old files (the
 * oldest is overwritten), then starts a new `path`.
 */
function openRotatingFile(
  path: string,
  options: { maxSize: number; rotated: number },
): RotatingFile {
  const encoder = new TextEncoder();
  const open = () => Deno.openSync(path, { create: true, append: true });
  let offset = 0;
  try {
    offset = Deno.statSync(path).size;
  } catch {
    // A new file.
  }
  let file = open();
  return {
    write(text) {
      const bytes = encoder.encode(text);
      if (offset + bytes.length > options.maxSize) {
        file.close();
        for (let i = options.rotated - 1; i > 0; i--) {
          try {
            Deno.renameSync(`${path}.${i}`, `${path}.${i + 1}`);
          } catch {
            // Not there yet.
          }
        }
        Deno.renameSync(path, `${path}.1`);
        offset = 0;
        file = open();
      }
      file.writeSync(bytes);
      file.syncSync();
      offset += bytes.length;
    },
    close() {
      file.close();
    },
  };
}

/** `--log-file -`: every record to stderr (Docker, journald), nothing rotated. */
function configureStderr(
  write: (line: string) => void,
  format: (entry: LogEntry) => string,
): LoggingHandle {
  install((entry) => {
    publish(entry);
    write(format(entry));
  });
  return {
    logFile: "-",
    close: () => {
      installed = undefined;
    },
  };
}
