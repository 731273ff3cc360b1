/**
 * How the Codex app-server is run: its executable, the adapter's options (approval policy,
 * sandbox, time limits), whether the operator's provider args already set a config key, and the
 * text of one turn.
 *
 * @module
 */
import { readEnv } from "../config/mod.ts";
import { formatRelayMessage } from "./relay_instructions.ts";
import type { Message } from "../types.ts";

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
  /**
   * After an `error` Codex will not retry, the turn ends failed if its `turn/completed` has not
   * come within this long, ms. Default 5 000.
   */
  failGraceMs?: number;
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
