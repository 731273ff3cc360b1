/**
 * Test harness for the Codex adapter: records what the adapter reports and waits for it, with a
 * bounded wait so a broken provider fails the test instead of hanging it.
 *
 * @module
 */
import type { AdapterContext, AdapterEvents, SessionEvent } from "../../src/adapters/adapter.ts";
import { defaultSpawner } from "../../src/adapters/adapter.ts";
import { getLogger } from "../../src/logger.ts";
import type {
  AgentStatus,
  Message,
  PermissionDecision,
  PermissionRequest,
} from "../../src/types.ts";

/** What the adapter reported, in order. */
export interface Recorder {
  readonly sink: AdapterEvents;
  readonly statuses: AgentStatus[];
  readonly events: SessionEvent[];
  readonly diagnostics: string[];
  /** Resolves with the exit report. */
  readonly exit: Promise<{ code: number | null; signal: string | null; expected: boolean }>;
  /** Resolves with the first event (counting from `from`) that passes `test`; rejects after `ms`. */
  next(test: (e: SessionEvent) => boolean, options?: { from?: number; ms?: number }): Promise<
    SessionEvent
  >;
  /** Resolves once `status` has been reported (counting from index `from`); rejects after `ms`. */
  status(status: AgentStatus, options?: { from?: number; ms?: number }): Promise<void>;
}

/** A recorder of adapter callbacks. */
export function recorder(): Recorder {
  const statuses: AgentStatus[] = [];
  const events: SessionEvent[] = [];
  const diagnostics: string[] = [];
  const listeners = new Set<() => void>();
  let exited: (info: { code: number | null; signal: string | null; expected: boolean }) => void =
    () => {};
  const exit = new Promise<{ code: number | null; signal: string | null; expected: boolean }>(
    (r) => (exited = r),
  );
  const changed = () => {
    for (const l of [...listeners]) l();
  };
  const wait = <T>(find: () => T | undefined, what: string, ms: number): Promise<T> =>
    new Promise((resolve, reject) => {
      const check = () => {
        const found = find();
        if (found === undefined) return false;
        listeners.delete(check);
        clearTimeout(timer);
        resolve(found);
        return true;
      };
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(
          new Error(
            `Timed out after ${ms} ms waiting for ${what}; events: ${
              JSON.stringify(events)
            }; statuses: ${JSON.stringify(statuses)}`,
          ),
        );
      }, ms);
      listeners.add(check);
      check();
    });
  return {
    sink: {
      status: (s) => {
        statuses.push(s);
        changed();
      },
      event: (e) => {
        events.push(e);
        changed();
      },
      exit: (info) => exited(info),
      diagnostic: (line) => diagnostics.push(line),
    },
    statuses,
    events,
    diagnostics,
    exit,
    next: (test, options = {}) =>
      wait(() => events.slice(options.from ?? 0).find(test), "an event", options.ms ?? 60_000),
    status: (status, options = {}) =>
      wait(
        () => statuses.slice(options.from ?? 0).includes(status) ? true : undefined,
        `status ${status}`,
        options.ms ?? 60_000,
      ).then(() => {}),
  };
}

/** A relay chat message for tests. */
export function chat(id: number, body: string, from = "alice"): Message {
  return { id, from, to: "codex-agent", kind: "chat", body, createdAt: new Date(0).toISOString() };
}

/** An adapter context for tests; `decide` answers permission questions (default: allow). */
export function codexContext(
  base: { cwd: string; stateDir: string; env: Record<string, string> },
  options: {
    decide?: (r: PermissionRequest) => PermissionDecision | Promise<PermissionDecision>;
    resumeId?: string;
    firstPromptNotes?: string;
    args?: string[];
  } = {},
): AdapterContext & { permissionRequests: PermissionRequest[] } {
  const permissionRequests: PermissionRequest[] = [];
  const decide = options.decide ?? (() => ({ decision: "allow" as const }));
  return {
    agentId: "codex-agent",
    provider: "codex",
    cwd: base.cwd,
    stateDir: base.stateDir,
    args: options.args ?? [],
    env: base.env,
    ...(options.resumeId ? { resumeId: options.resumeId } : {}),
    ...(options.firstPromptNotes ? { firstPromptNotes: options.firstPromptNotes } : {}),
    permissionPolicy: "allow",
    decidePermission: (r) => {
      permissionRequests.push(r);
      return Promise.resolve(decide(r));
    },
    spawn: defaultSpawner,
    log: getLogger("codex-test"),
    permissionRequests,
  };
}
