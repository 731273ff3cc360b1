/**
 * `agent-relay-runner status --agent-id ID [--state-dir DIR] [--json]`: a short human view of a
 * running agent (status, provider, uptime, turn, pending and poisoned events, relay state, last
 * error, log file), from its runner-info file, control secret and `GET /status`. `--json` prints
 * the `/status` object as it is.
 *
 * Exit codes: 0 shown; 1 no runner running (one line on stderr saying why); 2 bad usage.
 *
 * @module
 */
import { type Env, parseFlags, UsageError } from "../config/mod.ts";
import { errorText, escapeText } from "../util/mod.ts";
import {
  fetchStatus,
  type LinkedInfo,
  NoRunnerError,
  readLink,
  resolveTarget,
  TARGET_FLAGS,
} from "./runner_link.ts";

/** The help text of `status`. */
export const STATUS_USAGE =
  `Usage: agent-relay-runner status --agent-id ID [--state-dir DIR] [--json]

Shows a running agent: status, provider, uptime, turn in progress, pending and poisoned events,
relay state, last error and log file. It reads <state dir>/runner-info.json and the control
secret next to it, then asks the runner's control server (GET /status on 127.0.0.1).

Options:
  --agent-id ID      the agent, as given to "run"
  --state-dir DIR    the agent's state dir (default <AGENT_RELAY_HOME or ~/.agent-relay>/state/<id>)
  --info-file PATH   the runner-info file, if "run" was given one (or AGENT_RELAY_RUNNER_INFO_FILE)
  --json             print the /status object
  -h, --help         this help

Exit codes: 0 shown; 1 no runner is running (the reason on stderr); 2 bad usage.`;

const FLAGS = {
  ...TARGET_FLAGS,
  "json": { type: "boolean" },
  "help": { type: "boolean", short: "h" },
} as const;

/** Where the command writes (tests). */
export interface StatusCommandOptions {
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
}

function write(stream: { writeSync(p: Uint8Array): number }): (text: string) => void {
  const encoder = new TextEncoder();
  return (text) => {
    const bytes = encoder.encode(text.endsWith("\n") ? text : `${text}\n`);
    let written = 0;
    try {
      while (written < bytes.length) written += stream.writeSync(bytes.subarray(written));
    } catch {
      // The stream is gone.
    }
  };
}

/** `1h 2m`, `3m 4s`, `5s`. */
export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m ${s % 60}s`;
  return `${s}s`;
}

function obj(value: unknown): Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as Record<string, unknown>
    : {};
}

function text(value: unknown): string {
  if (value === undefined || value === null || value === "") return "-";
  if (typeof value === "string") return escapeText(value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return escapeText(JSON.stringify(value));
}

/** An ISO time from an ISO string or epoch milliseconds. */
function iso(value: unknown): string | undefined {
  if (typeof value === "number" && Number.isFinite(value)) return new Date(value).toISOString();
  if (typeof value === "string" && !Number.isNaN(Date.parse(value))) return escapeText(value);
  return undefined;
}

/** The first non-empty error among the snapshot's error fields. */
function lastError(status: Record<string, unknown>): string | undefined {
  const candidates = [
    status["lastError"],
    obj(status["relay"])["lastError"],
    obj(status["outboxTotals"])["lastError"],
    obj(status["obligations"])["lastError"],
  ];
  for (const candidate of candidates) {
    if (typeof candidate === "string" && candidate !== "") return candidate;
    const message = obj(candidate)["message"];
    if (typeof message === "string" && message !== "") return message;
  }
  return undefined;
}

/** The human view of a `/status` snapshot (one `label  value` line per topic). */
export function formatStatus(status: Record<string, unknown>, info: LinkedInfo): string {
  const rows: Array<[string, string]> = [];
  const providerPid = typeof status["pid"] === "number" ? `, provider pid ${status["pid"]}` : "";
  rows.push([
    "agent",
    `${text(status["agentId"] ?? info.agentId)} (${text(status["provider"] ?? info.provider)})` +
    `, runner pid ${text(status["runnerPid"] ?? info.pid)}${providerPid}`,
  ]);
  const started = iso(status["startedAt"]) ?? iso(info.startedAt);
  const uptime = typeof status["uptimeMs"] === "number"
    ? `up ${duration(status["uptimeMs"])}${started ? ` (since ${started})` : ""}`
    : started
    ? `since ${started}`
    : "";
  rows.push(["status", `${text(status["status"])}${uptime ? `, ${uptime}` : ""}`]);
  const turn = obj(status["turn"]);
  const waiting = typeof status["pendingMessages"] === "number" ? status["pendingMessages"] : 0;
  const turnText = Object.keys(turn).length > 0
    ? text(turn)
    : status["status"] === "busy"
    ? "in progress"
    : "none in progress";
  rows.push(["turn", `${turnText}; ${waiting} message(s) waiting for the agent`]);
  const outbox = obj(status["outbox"]);
  const totals = obj(status["outboxTotals"]);
  const delivered = typeof totals["delivered"] === "number"
    ? `, ${totals["delivered"]} delivered`
    : "";
  rows.push([
    "outbox",
    `${text(outbox["pending"] ?? 0)} pending, ${
      text(outbox["poisoned"] ?? 0)
    } poisoned${delivered}`,
  ]);
  const relay = obj(status["relay"]);
  const relayParts = [
    status["bus"] !== undefined ? `bus ${text(status["bus"])}` : undefined,
    ...Object.entries(relay)
      .filter(([key, value]) => key !== "lastError" && typeof value !== "object")
      .map(([key, value]) => `${escapeText(key)} ${text(value)}`),
  ].filter((part) => part !== undefined);
  const obligations = obj(status["obligations"]);
  if (typeof obligations["count"] === "number") {
    relayParts.push(`${obligations["count"]} reply obligation(s)`);
  }
  rows.push(["relay", relayParts.length > 0 ? relayParts.join(", ") : "-"]);
  rows.push(["last error", text(lastError(status))]);
  const logFile = typeof info.logFile === "string" ? info.logFile : status["logFile"];
  rows.push(["log file", logFile === "-" ? "stderr" : text(logFile)]);
  rows.push(["control", `http://127.0.0.1:${info.controlPort}`]);
  return rows.map(([label, value]) => `${label.padEnd(11)} ${value}`).join("\n");
}

/** Runs `status`; resolves with the exit code. */
export async function statusCommand(
  args: string[],
  env: Env,
  options: StatusCommandOptions = {},
): Promise<number> {
  const out = options.stdout ?? write(Deno.stdout);
  const err = options.stderr ?? write(Deno.stderr);
  const { values, positionals } = parseFlags(args, FLAGS, { command: "status" });
  if (values["help"] === true) {
    out(STATUS_USAGE);
    return 0;
  }
  if (positionals.length > 0) {
    throw new UsageError(`unexpected argument "${positionals[0]}" for "status"`);
  }
  const target = resolveTarget(values, env);
  try {
    const link = await readLink(target);
    const status = await fetchStatus(link);
    out(
      values["json"] === true ? JSON.stringify(status, null, 2) : formatStatus(status, link.info),
    );
    return 0;
  } catch (error) {
    if (error instanceof NoRunnerError) {
      err(`agent-relay-runner: ${escapeText(error.message)}`);
      return 1;
    }
    err(`agent-relay-runner: status failed: ${escapeText(errorText(error))}`);
    return 1;
  }
}
