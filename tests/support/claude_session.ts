/**
 * Test harness for the Claude adapter on the real CLI: a sandbox ({@linkcode createClaudeSandbox}),
 * the mock Anthropic API on a Unix socket forwarded into it, an adapter, and a recorder of
 * everything the adapter reports, with bounded waits.
 *
 * @module
 */
import { join } from "node:path";
import type {
  AdapterContext,
  AdapterEvents,
  ProviderAdapter,
  SessionEvent,
} from "../../src/adapters/adapter.ts";
import { type ClaudeAdapterOptions, createClaudeAdapter } from "../../src/adapters/claude.ts";
import { getLogger } from "../../src/logger.ts";
import type { AgentStatus, Message } from "../../src/types.ts";
import { type MockAnthropic, type MockScript, startMockAnthropic } from "./mock_anthropic.ts";
import { type ClaudeSandbox, createClaudeSandbox, type Forward } from "./claude_netns.ts";

/** The port the mock API has inside the namespace (each namespace is private, so fixed). */
export const MOCK_PORT_INSIDE = 41000;
/** The mock's socket name in the sandbox's socket dir. */
export const MOCK_SOCKET = "anthropic.sock";

/** Everything an adapter reported, in order. */
export class Recorder implements AdapterEvents {
  readonly statuses: AgentStatus[] = [];
  readonly events: { event: SessionEvent; at: number }[] = [];
  readonly exits: { code: number | null; signal: string | null; expected: boolean }[] = [];
  readonly diagnostics: string[] = [];
  #waiters = new Set<() => void>();

  status(status: AgentStatus): void {
    this.statuses.push(status);
    this.#wake();
  }
  event(event: SessionEvent, at: number): void {
    this.events.push({ event, at });
    this.#wake();
  }
  exit(info: { code: number | null; signal: string | null; expected: boolean }): void {
    this.exits.push(info);
    this.#wake();
  }
  diagnostic(line: string): void {
    this.diagnostics.push(line);
    this.#wake();
  }

  /** The session events of one type. */
  of<T extends SessionEvent["type"]>(type: T): Extract<SessionEvent, { type: T }>[] {
    return this.events.map((e) => e.event).filter((e): e is Extract<SessionEvent, { type: T }> =>
      e.type === type
    );
  }

  /**
   * Resolves once `predicate` holds (checked on every report and every 50 ms); rejects after
   * `timeoutMs` saying what it waited for.
   */
  waitFor(what: string, predicate: () => boolean, timeoutMs = 60_000): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!predicate()) return;
        clearTimeout(timer);
        clearInterval(poll);
        this.#waiters.delete(check);
        resolve();
      };
      // Also poll, for conditions no report announces (a process dying, a file appearing).
      const poll = setInterval(check, 50);
      const timer = setTimeout(() => {
        clearInterval(poll);
        this.#waiters.delete(check);
        reject(
          new Error(
            `Timed out after ${timeoutMs} ms waiting for ${what}; events: ${
              JSON.stringify(this.events.map((e) => e.event)).slice(0, 3000)
            }; statuses: ${this.statuses.join(",")}; diagnostics: ${
              this.diagnostics.slice(-10).join(" | ")
            }`,
          ),
        );
      }, timeoutMs);
      this.#waiters.add(check);
    });
  }

  /** Waits for the n-th turn-end (1-based). */
  turnEnds(n: number, timeoutMs?: number): Promise<void> {
    return this.waitFor(`turn-end #${n}`, () => this.of("turn-end").length >= n, timeoutMs);
  }

  #wake(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }
}

/** Options of {@linkcode startClaudeSession}. */
export interface ClaudeSessionOptions {
  script: MockScript;
  adapter?: ClaudeAdapterOptions;
  context?: Partial<AdapterContext>;
  /** Reuse a sandbox (and its HOME, so sessions can be resumed). */
  sandbox?: ClaudeSandbox;
  /** Reuse a mock. */
  mock?: MockAnthropic;
  /** More ports to forward into the namespace. */
  forwards?: Forward[];
}

/** A started session. */
export interface ClaudeSession {
  sandbox: ClaudeSandbox;
  mock: MockAnthropic;
  adapter: ProviderAdapter;
  rec: Recorder;
  /** Stops the adapter (and closes the mock and sandbox unless they were passed in). */
  close(): Promise<void>;
}

/** Builds a relay message. */
export function message(id: number, body: string, from = "alice"): Message {
  return { id, from, to: "agent-1", kind: "chat", body, createdAt: "2026-11-27T12:00:00.000Z" };
}

/** Creates the mock, sandbox and adapter; the adapter is not started. */
export async function createClaudeSession(options: ClaudeSessionOptions): Promise<ClaudeSession> {
  const ownSandbox = options.sandbox === undefined;
  const sandbox = options.sandbox ?? await createClaudeSandbox({
    forwards: [{ port: MOCK_PORT_INSIDE, socket: MOCK_SOCKET }, ...(options.forwards ?? [])],
  });
  const ownMock = options.mock === undefined;
  const mock = options.mock ??
    await startMockAnthropic(options.script, { path: join(sandbox.sockets, MOCK_SOCKET) });
  const rec = new Recorder();
  const context: AdapterContext = {
    agentId: "agent-1",
    provider: "claude",
    cwd: sandbox.cwd,
    stateDir: join(sandbox.root, "state"),
    args: [],
    env: {},
    permissionPolicy: "deny",
    decidePermission: () => Promise.resolve({ decision: "deny", reason: "test policy" }),
    spawn: sandbox.spawn,
    log: getLogger("claude-test"),
    ...options.context,
  };
  const adapter = createClaudeAdapter(context, rec, options.adapter);
  const m = mock;
  return {
    sandbox,
    mock: m,
    adapter,
    rec,
    close: async () => {
      await adapter.stop({ timeoutMs: 3000 });
      if (ownMock) await m.close();
      if (ownSandbox) await sandbox.cleanup();
    },
  };
}
