/**
 * Helpers of the round-2 attacks (issue 16, docs/reliability.md "Round 2"): a Claude Code stand-in
 * the real runner can start (`--provider claude` on the scripted fake CLI), the real bash hooks
 * run against a live runner, a `curl` spy, the control and separator characters no log may hold
 * raw, and percentiles.
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type HookRun, runHookScript } from "../../support/hook_scripts.ts";
import { type DevRelay, startDevRelay } from "../../../src/dev_relay/mod.ts";
import { withHome } from "../../support/home.ts";
import {
  type RunnerOptions,
  type RunningRunner,
  startRunner,
} from "../../support/runner_process.ts";

const FAKE_CLAUDE = fileURLToPath(
  new URL("../../fixtures/claude/fake_claude.ts", import.meta.url),
);
const HOOKS_DIR = fileURLToPath(new URL("../../../hooks/hooks/", import.meta.url));

/**
 * Writes an executable `claude` into `dir` that runs the scripted fake CLI, and returns the
 * environment that makes a runner start it (`AGENT_RELAY_CLAUDE_BIN`).
 */
export async function fakeClaude(dir: string): Promise<Record<string, string>> {
  const bin = join(dir, "claude");
  await Deno.writeTextFile(
    bin,
    `#!/usr/bin/env bash\nexec '${Deno.execPath()}' run -A --no-config --quiet '${FAKE_CLAUDE}' "$@"\n`,
    { mode: 0o700 },
  );
  return { AGENT_RELAY_CLAUDE_BIN: bin };
}

/** What {@linkcode withFakeClaude} gives its body. */
export interface FakeClaudeWorld {
  home: string;
  relay: DevRelay;
  /** Starts a runner of the fake Claude CLI, with the home as its cwd. */
  start(options: Pick<RunnerOptions, "agentId" | "logLevel" | "extraArgs">): RunningRunner;
}

/** Runs `fn` in a fresh home (`prefix`) beside a reference relay, closed afterwards. */
export async function withFakeClaude<T>(
  prefix: string,
  fn: (world: FakeClaudeWorld) => Promise<T>,
): Promise<T> {
  return await withHome(prefix, async (home) => {
    const relay = await startDevRelay({ port: 0 });
    try {
      const env = await fakeClaude(home);
      const start: FakeClaudeWorld["start"] = (options) =>
        startRunner(relay, { ...options, home, cwd: home, provider: "claude", env });
      return await fn({ home, relay, start });
    } finally {
      await relay.close();
    }
  });
}

export type { HookRun };

/** The environment a provider's hooks get from `runner` (port, secret, pid). */
export async function hookEnv(runner: RunningRunner): Promise<Record<string, string>> {
  const { port, secret } = await runner.control();
  return {
    AGENT_RELAY_RUNNER_PORT: String(port),
    AGENT_RELAY_RUNNER_SECRET: secret,
    AGENT_RELAY_RUNNER_PID: String(runner.child.pid),
  };
}

/** Runs the real hook script `hooks/hooks/<event>.sh` with `payload` on stdin. */
export function runHook(
  event: string,
  payload: string,
  env: Record<string, string>,
): Promise<HookRun> {
  return runHookScript(join(HOOKS_DIR, `${event}.sh`), payload, env);
}

/** A dir whose `curl` records each call before running the real one; put `path` first on PATH. */
export async function curlSpy(
  dir: string,
): Promise<{ path: string; calls: () => Promise<number> }> {
  const real = new TextDecoder().decode(
    (await new Deno.Command("bash", { args: ["-c", "command -v curl"] }).output()).stdout,
  ).trim();
  const spyDir = join(dir, "curl-spy");
  await Deno.mkdir(spyDir, { recursive: true });
  const log = join(spyDir, "calls");
  await Deno.writeTextFile(
    join(spyDir, "curl"),
    `#!/usr/bin/env bash\necho call >>'${log}'\nexec '${real}' "$@"\n`,
    { mode: 0o700 },
  );
  return {
    path: `${spyDir}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
    calls: async () => {
      try {
        return (await Deno.readTextFile(log)).split("\n").filter(Boolean).length;
      } catch {
        return 0;
      }
    },
  };
}

/**
 * The characters no log line may hold raw (issue 16): NUL, BEL, BS, VT, FF, ESC, DEL, the C1
 * controls with NEL (U+0085) and CSI (U+009B), the line and paragraph separators, and the bidi
 * embeddings, overrides and isolates.
 */
export const HOSTILE_CHARS: readonly string[] = [
  "\u0000",
  "\u0007",
  "\u0008",
  "\u000b",
  "\u000c",
  "\u001b",
  "\u007f",
  "\u0080",
  "\u0085",
  "\u009b",
  "\u009f",
  "\u2028",
  "\u2029",
  "\u202a",
  "\u202b",
  "\u202c",
  "\u202d",
  "\u202e",
  "\u2066",
  "\u2067",
  "\u2068",
  "\u2069",
];

// deno-lint-ignore no-control-regex
const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/**
 * The lines of `text` that hold a raw control, separator or bidi character (a log file's line
 * feeds excepted), each as `line N: U+XXXX`; empty when there is none.
 */
export function rawControls(text: string): string[] {
  const found: string[] = [];
  text.split("\n").forEach((line, i) => {
    const m = RAW.exec(line);
    if (m) {
      found.push(
        `line ${i + 1}: U+${m[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")} in ${
          JSON.stringify(line.slice(0, 160))
        }`,
      );
    }
  });
  return found;
}

/** The `q` quantile (0..1) of `values`, nearest rank; NaN when empty. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** p50 / p99 / max of `values`, ms with one decimal. */
export function latencyFigures(values: readonly number[]): {
  n: number;
  p50: number;
  p99: number;
  max: number;
} {
  const round = (x: number) => Math.round(x * 10) / 10;
  return {
    n: values.length,
    p50: round(quantile(values, 0.5)),
    p99: round(quantile(values, 0.99)),
    max: round(values.length ? Math.max(...values) : NaN),
  };
}

/** Methods named like members of `Object.prototype` (and of a function). */
export const OBJECT_MEMBER_METHODS: readonly string[] = [
  "constructor",
  "toString",
  "hasOwnProperty",
  "valueOf",
  "isPrototypeOf",
  "propertyIsEnumerable",
  "toLocaleString",
  "__proto__",
  "__defineGetter__",
  "__defineSetter__",
  "__lookupGetter__",
  "__lookupSetter__",
  "prototype",
  "call",
  "apply",
  "bind",
  "length",
  "name",
];

/** The routes of the control server, as the contract lists them. */
export const ROUTES: readonly string[] = [
  "/hooks/stop",
  "/hooks/pre-tool-use",
  "/hooks/permission-request",
  "/hooks/session-end",
  "/hook-fatal",
  "/status",
  "/reply-obligations",
  "/log-level",
  "/health",
  "/ready",
  "/metrics",
  "/monitor",
];

/** Sends `method path` on a raw socket; returns the status line and the response text. */
export async function rawRequest(
  port: number,
  method: string,
  path: string,
  secret?: string,
): Promise<{ status: number; text: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const head = `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n` +
      (secret ? `Authorization: Bearer ${secret}\r\n` : "") +
      `Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`;
    await conn.write(new TextEncoder().encode(head));
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(16 * 1024);
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
    }
    const text = new TextDecoder().decode(
      chunks.reduce((a, b) => new Uint8Array([...a, ...b]), new Uint8Array()),
    );
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? "0");
    return { status, text };
  } finally {
    try {
      conn.close();
    } catch {
      // Closed by the server.
    }
  }
}
