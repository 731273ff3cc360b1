/**
 * The provider adapter interface: what the runner needs from a provider (claude, codex, command).
 *
 * An adapter owns one provider process at a time. The runner calls {@linkcode ProviderAdapter}
 * methods; the adapter reports back through the {@linkcode AdapterEvents} it was built with.
 * One file per provider in this folder implements {@linkcode AdapterFactory}.
 *
 * @module
 */
import type { HookEvent, HookPayload } from "../control/mod.ts";
import type { Logger } from "../logger.ts";
import type {
  AgentStatus,
  Message,
  PermissionDecision,
  PermissionPolicy,
  PermissionRequest,
  ProviderName,
} from "../types.ts";

/** Token and cost figures reported by a provider at turn end. */
export interface Usage {
  inputTokens?: number;
  outputTokens?: number;
  cacheReadTokens?: number;
  cacheWriteTokens?: number;
  costUsd?: number;
}

/** Something that happened in the provider session, for the mirror and the runner's bookkeeping. */
export type SessionEvent =
  /** The provider's session (Claude) or thread (Codex) id: kept in the state dir to resume. */
  | { type: "session-id"; id: string }
  /** The provider has taken in these delivered messages (consumed, not just written). */
  | { type: "consumed"; messageIds: number[] }
  /** A prompt the provider received that the relay did not send (typed or hook-fed). */
  | { type: "prompt"; text: string }
  /** The final response of a turn. `replyTo`: the provider says which message it answers. */
  | { type: "response"; text: string; replyTo?: number }
  | { type: "reasoning"; text: string }
  /** A tool step: `kind` such as `tool_use`, `tool_result`, `command`, `file_change`. */
  | { type: "step"; kind: string; text: string; tool?: string }
  /** The turn ended. `ok: false` = the provider reported a failed turn. */
  | { type: "turn-end"; ok: boolean; error?: string; usage?: Usage }
  /**
   * An insight about the session for the relay, such as Claude's `context_ratio` at session end:
   * `signal` names it, `value` is its measurement, `outcome` what the session came to.
   */
  | { type: "insight"; signal: string; value: unknown; outcome?: unknown };

/** How an adapter reports back to the runner. Every callback must be cheap and never throw. */
export interface AdapterEvents {
  /** The provider's semantic status changed. */
  status(status: AgentStatus): void;
  /** A session event (each exactly once). `at` is the event's epoch milliseconds. */
  event(event: SessionEvent, at: number): void;
  /** The provider process exited. `expected` = the runner asked it to stop. */
  exit(info: { code: number | null; signal: string | null; expected: boolean }): void;
  /** A line of provider diagnostics (stderr) for the log. */
  diagnostic?(line: string): void;
}

/** Starts a child process; injected so tests can watch what is spawned. */
export type Spawner = (command: string, options: Deno.CommandOptions) => Deno.ChildProcess;

/** The default {@linkcode Spawner}: `new Deno.Command(...).spawn()`. */
export const defaultSpawner: Spawner = (command, options) =>
  new Deno.Command(command, options).spawn();

/** Everything an adapter is given to run its provider. */
export interface AdapterContext {
  agentId: string;
  provider: ProviderName;
  /** The agent's working directory. */
  cwd: string;
  /** The agent's state dir (session ids; the Claude adapter writes its hook plugin here). */
  stateDir: string;
  /** Extra provider arguments (after `--` on the command line). */
  args: string[];
  /** Variables to add to the provider's environment (control port and secret among them). */
  env: Record<string, string>;
  /** The session or thread id to resume, if one was saved. */
  resumeId?: string;
  /** Notes for the agent's first prompt (relay context, workspace caveats). */
  firstPromptNotes?: string;
  permissionPolicy: PermissionPolicy;
  /** How Claude Code's hooks reach the control server (claude only; default bash + curl). */
  hookTransport?: "http" | "bash";
  /** Answers a permission question by policy within the hook budget (never hangs). */
  decidePermission(request: PermissionRequest): Promise<PermissionDecision>;
  spawn: Spawner;
  log: Logger;
}

/** A provider adapter: one provider process at a time. */
export interface ProviderAdapter {
  /** Spawns the provider. Resolves once it is ready to take a delivery. */
  start(): Promise<void>;
  /**
   * Hands messages to the provider as one turn. Resolves once they are written to the provider
   * (the `consumed` event says when it took them in); rejects when they could not be handed over.
   */
  deliver(messages: Message[]): Promise<void>;
  /** Asks the provider to abandon the current turn. */
  interrupt(): Promise<void>;
  /**
   * Stops the provider: politely, then killed after `timeoutMs`. Resolves once it is gone and
   * every event it had to report (an insight being made, say) has been reported.
   */
  stop(options?: { timeoutMs?: number }): Promise<void>;
  /**
   * Hears every hook the control server received (Claude Code's plugin), after the server
   * answered it. Must be cheap and never throw; work it starts is finished (or given up) before
   * `stop()` resolves.
   */
  onHook?(event: HookEvent, payload: HookPayload): void;
  /** Kills the provider at once (SIGKILL), for an immediate exit; no events need follow. */
  kill?(): void;
  /** The provider's pid, while it runs. */
  readonly pid: number | undefined;
}

/** Builds an adapter for a context, reporting through `events`. */
export type AdapterFactory = (context: AdapterContext, events: AdapterEvents) => ProviderAdapter;
