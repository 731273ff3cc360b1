/**
 * Configuration of `agent-relay-runner run`: flag > environment > default, validated.
 *
 * Directory layout (docs/configuration.md): everything the runner writes lives under one base
 * dir, `$AGENT_RELAY_HOME` or `~/.agent-relay`:
 *
 * ```
 * <home>/logs/session-mirror-<agent>.log       --log-dir
 * <home>/state/<agent>/                        --state-dir
 * <home>/state/<agent>/runner-info.json        --info-file, AGENT_RELAY_RUNNER_INFO_FILE
 * <home>/state/<agent>/outbox/outbox.sqlite    AGENT_RELAY_RUNNER_OUTBOX_DIR
 * <home>/state/<agent>/claude-plugin/          the hook plugin, written at start
 * ```
 *
 * @module
 */
import { type FlagSpecs, parseFlags } from "./flags.ts";
import { UsageError } from "./usage_error.ts";
import { dirname, isAbsolute, join, resolve } from "../util/mod.ts";
import {
  DEFAULT_LOG_FILES,
  DEFAULT_LOG_MAX_BYTES,
  logFileName,
  type LogFormat,
  type LogLevel,
  parseLogLevel,
  safeLogName,
} from "../logger.ts";
import {
  PERMISSION_POLICIES,
  type PermissionPolicy,
  type ProviderName,
  PROVIDERS,
} from "../types.ts";

/** The resolved configuration of one runner. */
export interface RunConfig {
  agentId: string;
  provider: ProviderName;
  relayUrl: string;
  /** The relay's bearer token (`AGENT_RELAY_TOKEN`); never logged. */
  token: string | undefined;
  /**
   * `--token-file` / `AGENT_RELAY_TOKEN_FILE`: a 0600 file holding the token, read at start and
   * again when a renewal fails, so the token is in no process environment.
   */
  tokenFile: string | undefined;
  /** How Claude's hooks reach the control server: native HTTP hooks, or bash + curl. */
  hooks: HookTransport;
  cwd: string;
  home: string;
  stateDir: string;
  logDir: string;
  outboxDir: string;
  infoFile: string;
  logLevel: LogLevel;
  logFormat: LogFormat;
  /**
   * `--log-file`: the log file's absolute path (default `<logDir>/session-mirror-<agent>.log`),
   * or `-` for stderr. A path given moves `logDir` to its dir.
   */
  logFile: string;
  /** `--log-max-bytes`: rotate when the file would grow past this. Default 10 MiB. */
  logMaxBytes: number;
  /** `--log-files`: files kept, the live one included. Default 5. */
  logFiles: number;
  /** The provider's restart policy (`--restart-max`, `--restart-window`, `--restart-backoff`). */
  restart: RestartConfig;
  /**
   * `--stop-timeout`: the whole graceful stop budget, in ms (default 8 000): a supervisor's stop
   * timeout must be above it. Split into {@linkcode RunConfig.stopTimeoutMs} and
   * {@linkcode RunConfig.flushTimeoutMs}.
   */
  stopBudgetMs: number;
  /** The provider's share of the stop budget: it is killed after this. Default 5 000. */
  stopTimeoutMs: number;
  /** The outbox's last flush, after the provider stopped: min(3 000, half the budget). */
  flushTimeoutMs: number;
  /** 0 = any free port. */
  controlPort: number;
  permissionPolicy: PermissionPolicy;
  /** How often a failed turn is tried again before its messages get a failure reply. */
  turnRetries: number;
  /** `AGENT_RELAY_WORKSPACE_JSON`, unparsed. */
  workspaceJson: string | undefined;
  /** Arguments after `--`, for the provider. */
  providerArgs: string[];
}

/** The restart policy's settings, named as the runner's `RestartPolicyOptions`. */
export interface RestartConfig {
  /** `--restart-max`: give up when more rapid exits than this fall in the window. Default 5. */
  maxRapidExits: number;
  /** `--restart-window` (seconds, kept in ms): the window exits are counted in. Default 60 s. */
  windowMs: number;
  /** `--restart-backoff` (ms): the first restart delay, doubled per recent exit. Default 500. */
  stepMs: number;
  /** The longest restart delay: 10 s, or the first delay when that is longer. */
  maxDelayMs: number;
}

/** How Claude Code's hooks call the runner. */
export type HookTransport = "http" | "bash";

/** The environment as the config reads it (injected in tests). */
export type Env = Record<string, string | undefined>;

/**
 * The loopback hosts the sandbox's net grant names (deno.json `permissions.runner.net`). Other
 * loopback addresses (127.0.0.2, ...) are refused here: the sandbox would refuse every call to
 * them at run time, and the runner would retry forever instead of saying so.
 */
const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);

/** Whether `host` (a URL hostname) is a loopback host the sandbox lets the runner reach. */
export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOSTS.has(host);
}

/** Validates a relay URL: http(s) on a loopback host. Returns it without a trailing slash. */
export function parseRelayUrl(value: string, name = "--relay-url"): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`${name} "${value}" is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UsageError(`${name} "${value}" must use http or https, not ${url.protocol}`);
  }
  if (!isLoopbackHost(url.hostname)) {
    throw new UsageError(
      `${name} "${value}" is not on a loopback host (the sandbox allows 127.0.0.1, localhost, [::1])`,
    );
  }
  if (url.username || url.password) {
    throw new UsageError(`${name} must not carry credentials; use AGENT_RELAY_TOKEN`);
  }
  if (url.search || url.hash || value.includes("?") || value.includes("#")) {
    throw new UsageError(
      `${name} "${value}" must not have a query string or a fragment (the runner adds its own paths)`,
    );
  }
  return url.href.replace(/\/+$/, "");
}

/** Agent ids: letters, digits, `.`, `_` and `-`, 1 to 128 of them, and not `.` or `..`. */
export const AGENT_ID = /^[A-Za-z0-9._-]{1,128}$/;

/**
 * Checks an agent id: it names the agent's state dir, so it must be a plain file name that no
 * other id shares. Throws {@linkcode UsageError}.
 */
export function parseAgentId(value: string | undefined, name = "--agent-id"): string {
  if (value === undefined) throw new UsageError(`missing required flag ${name}`);
  if (!AGENT_ID.test(value) || value === "." || value === "..") {
    throw new UsageError(
      `${name} ${
        JSON.stringify(value)
      } must be 1 to 128 letters, digits, ".", "_" or "-" (not "." or "..")`,
    );
  }
  return value;
}

/** Parses a TCP port (0 to 65535). */
export function parsePort(value: string, name: string): number {
  if (!/^\d{1,5}$/.test(value.trim())) {
    throw new UsageError(`${name} "${value}" is not a port number (0 to 65535)`);
  }
  const port = Number(value);
  if (port > 65535) throw new UsageError(`${name} "${value}" is not a port number (0 to 65535)`);
  return port;
}

function oneOf<T extends string>(value: string, allowed: readonly T[], name: string): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new UsageError(`${name} "${value}" is not one of: ${allowed.join(", ")}`);
}

/** A whole number from `min` to `max`, or a {@linkcode UsageError} naming `name`. */
export function parseWholeNumber(value: string, name: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d{1,16}$/.test(value.trim()) || n < min || n > max) {
    throw new UsageError(`${name} "${value}" must be a whole number from ${min} to ${max}`);
  }
  return n;
}

/** A number of seconds (decimals allowed) from `min` to `max`, returned in milliseconds. */
export function parseSeconds(value: string, name: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d{1,7}(\.\d{1,3})?$/.test(value.trim()) || n < min || n > max) {
    throw new UsageError(`${name} "${value}" must be a number of seconds from ${min} to ${max}`);
  }
  return Math.round(n * 1000);
}

/** The default graceful stop budget: 5 s for the provider, then 3 s for the last flush. */
export const DEFAULT_STOP_BUDGET_MS = 8_000;

/** Splits a stop budget: the flush gets min(3 s, half), the provider the rest. */
export function splitStopBudget(
  budgetMs: number,
): { stopTimeoutMs: number; flushTimeoutMs: number } {
  const flushTimeoutMs = Math.min(3_000, Math.floor(budgetMs / 2));
  return { stopTimeoutMs: budgetMs - flushTimeoutMs, flushTimeoutMs };
}

/** The base dir: `AGENT_RELAY_HOME` or `~/.agent-relay`. */
export function baseDir(env: Env): string {
  const explicit = env["AGENT_RELAY_HOME"];
  if (explicit) return resolve(explicit);
  const home = env["HOME"];
  if (!home) throw new UsageError("HOME is not set; set AGENT_RELAY_HOME to choose the base dir");
  return join(home, ".agent-relay");
}

/** The flags `run` accepts. */
export const RUN_FLAGS: FlagSpecs = {
  "agent-id": { type: "string" },
  "provider": { type: "string" },
  "relay-url": { type: "string" },
  "cwd": { type: "string" },
  "state-dir": { type: "string" },
  "log-dir": { type: "string" },
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  "control-port": { type: "string" },
  "info-file": { type: "string" },
  "permission-policy": { type: "string" },
  "turn-retries": { type: "string" },
  "token-file": { type: "string" },
  "hooks": { type: "string" },
  "log-file": { type: "string" },
  "log-max-bytes": { type: "string" },
  "log-files": { type: "string" },
  "restart-max": { type: "string" },
  "restart-window": { type: "string" },
  "restart-backoff": { type: "string" },
  "stop-timeout": { type: "string" },
  "help": { type: "boolean", short: "h" },
} as const;

/** Resolves the `run` configuration from argv and the environment. Throws {@linkcode UsageError}. */
export function resolveRunConfig(args: string[], env: Env): RunConfig {
  const { values, positionals, rest } = parseFlags(args, RUN_FLAGS, { command: "run" });
  if (positionals.length > 0) {
    throw new UsageError(
      `unexpected argument "${positionals[0]}" for "run" (provider arguments go after --)`,
    );
  }
  const str = (name: string): string | undefined => {
    const v = values[name];
    return typeof v === "string" ? v : undefined;
  };

  const agentId = parseAgentId(str("agent-id"));
  const provider = oneOf(str("provider") ?? "claude", PROVIDERS, "--provider");
  const relayRaw = str("relay-url") ?? env["AGENT_RELAY_URL"];
  if (relayRaw === undefined) throw new UsageError("missing required flag --relay-url");
  const relayUrl = parseRelayUrl(relayRaw, str("relay-url") ? "--relay-url" : "AGENT_RELAY_URL");

  const levelFlag = str("log-level");
  let logLevel: LogLevel;
  if (levelFlag !== undefined) {
    logLevel = parseLogLevel(levelFlag) ??
      (() => {
        throw new UsageError(
          `--log-level "${levelFlag}" is not one of: debug, info, warn, error, fatal`,
        );
      })();
  } else if (env["AGENT_RELAY_LOG_LEVEL"] !== undefined && env["AGENT_RELAY_LOG_LEVEL"] !== "") {
    const raw = env["AGENT_RELAY_LOG_LEVEL"];
    logLevel = parseLogLevel(raw) ??
      (() => {
        throw new UsageError(
          `AGENT_RELAY_LOG_LEVEL "${raw}" is not one of: debug, info, warn, error, fatal`,
        );
      })();
  } else if (env["AGENT_RELAY_SESSION_DEBUG"] === "1") {
    logLevel = "debug";
  } else {
    logLevel = "info";
  }
  const logFormat = oneOf(str("log-format") ?? "text", ["text", "json"] as const, "--log-format");
  const controlPort = parsePort(str("control-port") ?? "0", "--control-port");
  const policyFlag = str("permission-policy");
  const policyEnv = env["AGENT_RELAY_PERMISSION_POLICY"] || undefined;
  const permissionPolicy = oneOf(
    policyFlag ?? policyEnv ?? "ask-relay",
    PERMISSION_POLICIES,
    policyFlag === undefined && policyEnv !== undefined
      ? "AGENT_RELAY_PERMISSION_POLICY"
      : "--permission-policy",
  );
  const retriesRaw = str("turn-retries") ?? "1";
  if (!/^\d{1,2}$/.test(retriesRaw) || Number(retriesRaw) > 10) {
    throw new UsageError(`--turn-retries "${retriesRaw}" must be a whole number from 0 to 10`);
  }
  const turnRetries = Number(retriesRaw);
  const tokenFileRaw = str("token-file") ?? (env["AGENT_RELAY_TOKEN_FILE"] || undefined);
  const tokenFile = tokenFileRaw === undefined ? undefined : resolve(tokenFileRaw);
  if (tokenFile !== undefined && env["AGENT_RELAY_TOKEN"]) {
    throw new UsageError(
      `${
        str("token-file") ? "--token-file" : "AGENT_RELAY_TOKEN_FILE"
      } and AGENT_RELAY_TOKEN are both set: use one`,
    );
  }
  const hooks = oneOf(str("hooks") ?? "http", ["http", "bash"] as const, "--hooks");
  if (provider === "command" && rest.length === 0) {
    throw new UsageError(
      "--provider command needs the program after --, e.g. -- ./examples/echo-agent",
    );
  }

  const home = baseDir(env);
  const cwd = resolve(str("cwd") ?? Deno.cwd());
  const stateDir = resolve(str("state-dir") ?? join(home, "state", safeLogName(agentId)));
  const { logDir, logFile } = resolveLogFile(agentId, str("log-file"), str("log-dir"), home);
  const logMaxBytes = parseWholeNumber(
    str("log-max-bytes") ?? String(DEFAULT_LOG_MAX_BYTES),
    "--log-max-bytes",
    4096,
    2 ** 40,
  );
  const logFiles = parseWholeNumber(
    str("log-files") ?? String(DEFAULT_LOG_FILES),
    "--log-files",
    1,
    100,
  );
  const stepMs = parseWholeNumber(str("restart-backoff") ?? "500", "--restart-backoff", 1, 600_000);
  const restart: RestartConfig = {
    maxRapidExits: parseWholeNumber(str("restart-max") ?? "5", "--restart-max", 0, 1000),
    windowMs: parseSeconds(str("restart-window") ?? "60", "--restart-window", 1, 86_400),
    stepMs,
    maxDelayMs: Math.max(10_000, stepMs),
  };
  const stopBudgetMs = str("stop-timeout") === undefined
    ? DEFAULT_STOP_BUDGET_MS
    : parseSeconds(str("stop-timeout")!, "--stop-timeout", 1, 3600);
  const outboxDir = resolveOutboxDir({ stateDir }, env);
  const infoRaw = str("info-file") ?? (env["AGENT_RELAY_RUNNER_INFO_FILE"] || undefined);
  const infoFile = infoRaw
    ? (isAbsolute(infoRaw) ? infoRaw : resolve(infoRaw))
    : join(stateDir, "runner-info.json");

  return {
    agentId,
    provider,
    relayUrl,
    token: env["AGENT_RELAY_TOKEN"] || undefined,
    tokenFile,
    hooks,
    cwd,
    home,
    stateDir,
    logDir,
    outboxDir,
    infoFile,
    logLevel,
    logFormat,
    logFile,
    logMaxBytes,
    logFiles,
    restart,
    stopBudgetMs,
    ...splitStopBudget(stopBudgetMs),
    controlPort,
    permissionPolicy,
    turnRetries,
    workspaceJson: env["AGENT_RELAY_WORKSPACE_JSON"] || undefined,
    providerArgs: rest,
  };
}

/**
 * Where the log goes: `--log-file -` is stderr (the log dir stays the default); a path makes
 * its dir the log dir (so the sandbox grants that dir), and must agree with `--log-dir` when
 * both are given.
 */
function resolveLogFile(
  agentId: string,
  fileFlag: string | undefined,
  dirFlag: string | undefined,
  home: string,
): { logDir: string; logFile: string } {
  const defaultDir = resolve(dirFlag ?? join(home, "logs"));
  if (fileFlag === undefined) {
    return { logDir: defaultDir, logFile: join(defaultDir, logFileName(agentId)) };
  }
  if (fileFlag === "-") return { logDir: defaultDir, logFile: "-" };
  if (fileFlag.trim() === "" || fileFlag.endsWith("/")) {
    throw new UsageError(`--log-file "${fileFlag}" must name a file, or be - for stderr`);
  }
  const logFile = resolve(fileFlag);
  if (dirFlag !== undefined && dirname(logFile) !== defaultDir) {
    throw new UsageError(
      `--log-file "${fileFlag}" is not in --log-dir "${dirFlag}": give one or the other`,
    );
  }
  return { logDir: dirname(logFile), logFile };
}

/** Resolves the outbox dir from the flags and environment, for `run` and the `outbox` command alike. */
export function resolveOutboxDir(
  flags: { agentId?: string | undefined; stateDir?: string | undefined },
  env: Env,
): string {
  const explicit = env["AGENT_RELAY_RUNNER_OUTBOX_DIR"];
  if (explicit) return resolve(explicit);
  let stateDir = flags.stateDir;
  if (stateDir === undefined) {
    const agentId = flags.agentId;
    if (agentId === undefined) {
      throw new UsageError("missing --agent-id (or --state-dir) to find the outbox");
    }
    stateDir = join(baseDir(env), "state", safeLogName(agentId));
  }
  return join(resolve(stateDir), "outbox");
}
