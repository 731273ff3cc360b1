/**
 * The harness for the Claude Code hook plugin's end-to-end tests: the real bash scripts written
 * by `writePlugin`, a minimal runner (a real control server with a real obligation cache and
 * permission decider), a fake relay on loopback, and a curl spy.
 *
 * @module
 */
import { join } from "node:path";
import {
  type ControlCallbacks,
  type ControlServer,
  HOOK_EVENTS,
  type HookContext,
  type HookEvent,
  type HookFatalReport,
  startControlServer,
} from "../../src/control/mod.ts";
import {
  createPermissionDecider,
  type PermissionDecider,
} from "../../src/control/permission_policy.ts";
import { writePlugin } from "../../src/adapters/claude_plugin.ts";
import { ReplyObligationCache } from "../../src/runner/reply_obligations.ts";
import type { AgentStatus, PermissionDecision, ReplyObligation } from "../../src/types.ts";

/** The hook's budget: hooks.json gives every hook 5 s. */
export const HOOK_TIMEOUT_MS = 5_000;

// ---------------------------------------------------------------------------------------------
// A fake relay on loopback: obligations and permission answers, in three moods.

type Mood = "ok" | "slow";

class FakeRelay {
  mood: Mood = "ok";
  obligations: ReplyObligation[] = [];
  permission: PermissionDecision = { decision: "allow", reason: "operator said yes" };
  /** Requests answered, and requests still waiting (slow mood). */
  answered = 0;
  waiting = 0;
  readonly #releases = new Set<() => void>();
  readonly server: Deno.HttpServer<Deno.NetAddr>;

  constructor() {
    this.server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (req) => this.#handle(req),
    );
  }

  get url(): string {
    return `http://127.0.0.1:${this.server.addr.port}`;
  }

  async #handle(req: Request): Promise<Response> {
    if (this.mood === "slow") {
      this.waiting++;
      // Answers only after 5 s (or when the test ends).
      await new Promise<void>((resolve) => {
        const release = () => {
          clearTimeout(timer);
          this.#releases.delete(release);
          resolve();
        };
        const timer = setTimeout(release, 5_000);
        this.#releases.add(release);
      });
      this.waiting--;
    }
    this.answered++;
    const path = new URL(req.url).pathname;
    if (path === "/api/agents/a1/reply-obligations") {
      return Response.json({ obligations: this.obligations });
    }
    if (path === "/api/agents/a1/permission-requests" && req.method === "POST") {
      await req.json();
      return Response.json(this.permission);
    }
    return Response.json({ error: "not found" }, { status: 404 });
  }

  async close(): Promise<void> {
    for (const release of [...this.#releases]) release();
    await this.server.shutdown();
  }
}

// ---------------------------------------------------------------------------------------------
// A minimal runner: the control server with a real cache and a real permission decider.

export interface Runner {
  server: ControlServer;
  cache: ReplyObligationCache;
  delivered: number[];
  hooks: Array<{ event: HookEvent; raw: string; context: HookContext }>;
  statuses: Array<[AgentStatus, string]>;
  fatals: HookFatalReport[];
  failHook?: HookEvent;
  close(): Promise<void>;
}

export function startRunner(
  relay: FakeRelay,
  options: { policy?: "allow" | "deny" | "ask-relay"; budgetMs?: number } = {},
): Runner {
  const cache = new ReplyObligationCache({
    fetch: async (signal) => {
      const res = await fetch(`${relay.url}/api/agents/a1/reply-obligations`, { signal });
      if (!res.ok) throw new Error(`relay answered ${res.status}`);
      return (await res.json()).obligations;
    },
    intervalMs: 60_000,
  });
  const policy = options.policy ?? "deny";
  const decidePermission: PermissionDecider = createPermissionDecider({
    policy,
    ...(options.budgetMs ? { budgetMs: options.budgetMs } : {}),
    ...(policy === "ask-relay"
      ? {
        ask: async (request, { signal }) => {
          const res = await fetch(`${relay.url}/api/agents/a1/permission-requests`, {
            method: "POST",
            body: JSON.stringify(request),
            signal,
          });
          return await res.json();
        },
      }
      : {}),
  });
  const runner: Runner = {
    cache,
    delivered: [],
    hooks: [],
    statuses: [],
    fatals: [],
    server: undefined as unknown as ControlServer,
    async close() {
      cache.stop();
      await runner.server.close();
    },
  };
  const callbacks: ControlCallbacks = {
    status: () => ({
      agentId: "a1",
      provider: "claude",
      status: "busy",
      pid: Deno.pid,
      startedAt: Date.now(),
      outbox: { pending: 0, poisoned: 0 },
    }),
    setStatus: (status, source) => void runner.statuses.push([status, source]),
    obligations: cache,
    deliveredThisTurn: () => runner.delivered,
    decidePermission,
    onHook: (event, _payload, context) => {
      runner.hooks.push({ event, raw: context.raw, context });
      if (event === runner.failHook) throw new Error("the runner broke");
      return event === "user-prompt-submit" ? { echoed: HOOK_EVENTS[event] } : undefined;
    },
    onHookFatal: (report) => void runner.fatals.push(report),
  };
  runner.server = startControlServer({ port: 0, callbacks });
  return runner;
}

// ---------------------------------------------------------------------------------------------
// Running the real scripts

let pluginDir: string | undefined;
let stateDir: string | undefined;

export async function plugin(): Promise<string> {
  if (!pluginDir) {
    stateDir = await Deno.makeTempDir({ prefix: "hooks-test-" });
    pluginDir = await writePlugin(stateDir);
  }
  return pluginDir;
}

/** A hook script's run: exit code, output, and how long it took. */
export interface HookRun {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Runs the bash hook `script` with `payload` on stdin and only PATH plus `env` in its
 * environment (`closeStdout`: with its stdout closed, as a broken pipe would leave it).
 */
export async function runHookScript(
  script: string,
  payload: string,
  env: Record<string, string>,
  options: { closeStdout?: boolean } = {},
): Promise<HookRun> {
  const args = options.closeStdout ? ["-c", 'exec 1>&-; exec "$0"', script] : [script];
  const started = performance.now();
  const child = new Deno.Command("bash", {
    args,
    clearEnv: true,
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", ...env },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(payload));
  await writer.close();
  const out = await child.output();
  const decoder = new TextDecoder();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
    ms: performance.now() - started,
  };
}

/** Runs the written plugin's hook for `event` (see {@linkcode runHookScript}). */
export async function runHook(
  event: string,
  payload: string,
  env: Record<string, string>,
  options: { closeStdout?: boolean } = {},
): Promise<HookRun> {
  const root = await plugin();
  return await runHookScript(
    join(root, "hooks", `${event}.sh`),
    payload,
    { CLAUDE_PLUGIN_ROOT: root, ...env },
    options,
  );
}

export function envFor(runner: Runner): Record<string, string> {
  return {
    AGENT_RELAY_RUNNER_PORT: String(runner.server.port),
    AGENT_RELAY_RUNNER_SECRET: runner.server.secret,
    // This test process is the runner (comm `deno`): the liveness check passes.
    AGENT_RELAY_RUNNER_PID: String(Deno.pid),
  };
}

/**
 * A PATH whose `curl` records each call (to `log`) before running the real one, so a test can
 * see that no curl ran at all.
 */
export async function curlSpy(): Promise<
  { path: string; calls: () => Promise<number>; dir: string }
> {
  const dir = await Deno.makeTempDir({ prefix: "curl-spy-" });
  const real = new TextDecoder().decode(
    (await new Deno.Command("bash", { args: ["-c", "command -v curl"] }).output()).stdout,
  ).trim();
  const log = join(dir, "calls");
  await Deno.writeTextFile(
    join(dir, "curl"),
    `#!/usr/bin/env bash\necho call >>'${log}'\nexec '${real}' "$@"\n`,
    { mode: 0o700 },
  );
  return {
    dir,
    path: `${dir}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
    calls: async () => {
      try {
        return (await Deno.readTextFile(log)).split("\n").filter(Boolean).length;
      } catch {
        return 0;
      }
    },
  };
}

export const owed = (messageId: number, from: string, body?: string): ReplyObligation => ({
  messageId,
  from,
  createdAt: "2026-11-27T10:00:00.000Z",
  ...(body === undefined ? {} : { body }),
});

/** Runs `fn` with a fake relay and a runner, closing both afterwards. */
export async function withRunner(
  options: { policy?: "allow" | "deny" | "ask-relay"; budgetMs?: number },
  fn: (runner: Runner, relay: FakeRelay) => Promise<void>,
): Promise<void> {
  const relay = new FakeRelay();
  const runner = startRunner(relay, options);
  try {
    await fn(runner, relay);
  } finally {
    await runner.close();
    await relay.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The plugin files

/** Removes the plugin's temp state dir (the last test of each file calls it). */
export async function cleanupPlugin(): Promise<void> {
  if (stateDir) await Deno.remove(stateDir, { recursive: true });
  stateDir = undefined;
  pluginDir = undefined;
}
