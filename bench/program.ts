/**
 * The real program for the bench: `main.ts run` started exactly as `deno task start` starts it
 * (the launcher's flags from deno.json, the command in its sandbox Worker), with the `command`
 * provider, against a relay the bench runs; and `deno run hello.ts`, the in-run baseline of a
 * start. (bench/ never imports tests/: this is the bench's own small copy of the harness.)
 *
 * @module
 */
import { join } from "node:path";
import { APP_DIR, LAUNCH_ENV, sandboxedRunArgs } from "../scripts/sandbox.ts";

/** A bash `command` provider: answers each message with `done <id>` after `delay` seconds. */
export function replyingAgent(delay: string): string[] {
  const script = `
while IFS= read -r line; do
  id=\${line#*\\"id\\":}; id=\${id%%,*}
  sleep ${delay}
  printf '{"type":"response","text":"done %s","replyTo":%s}\\n' "$id" "$id"
  echo "$id" >> replied.txt
done`;
  return ["bash", "-c", script];
}

/** A started program. */
export interface Program {
  readonly child: Deno.ChildProcess;
  /** `performance.now()` just before the spawn. */
  readonly spawnedAt: number;
  readonly stateDir: string;
  /** The provider's cwd (where {@linkcode replyingAgent} writes `replied.txt`). */
  readonly cwd: string;
  /** The runner-info file once written by this process: its contents and when it was seen. */
  info(): Promise<{ info: Record<string, unknown>; at: number }>;
  /** Resolves when `GET /health` on the control port answers 200; when it first did. */
  controlReady(): Promise<number>;
  /** Resolves when `GET /ready` answers 200. */
  ready(): Promise<void>;
  /** The process's resident memory (VmRSS), bytes. */
  rss(): number;
  /** SIGTERM and wait (SIGKILL after 10 s). */
  stop(): Promise<void>;
}

/** Polls `get` every `everyMs` until it gives a value, for at most `timeoutMs`. */
export async function poll<T>(
  what: string,
  get: () => Promise<T | undefined> | T | undefined,
  options: { everyMs?: number; timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<T> {
  const until = performance.now() + (options.timeoutMs ?? 60_000);
  while (true) {
    options.signal?.throwIfAborted();
    const value = await get();
    if (value !== undefined) return value;
    if (performance.now() > until) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, options.everyMs ?? 2));
  }
}

/** A process's VmRSS from /proc, in bytes. */
export function rssOf(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
  if (!kb) throw new Error(`/proc/${pid}/status has no VmRSS line`);
  return Number(kb) * 1024;
}

async function answers(url: string): Promise<boolean> {
  try {
    const response = await fetch(url);
    await response.body?.cancel();
    return response.ok;
  } catch {
    return false;
  }
}

/** Starts `main.ts run --provider command -- AGENT` against `relay` in `home`. */
export function startProgram(
  relay: { url: string; token: string },
  options: { home: string; agentId: string; agent: string[]; logLevel?: string },
): Program {
  const stateDir = join(options.home, "state", options.agentId);
  const cwd = join(options.home, "work");
  Deno.mkdirSync(cwd, { recursive: true });
  const env = {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: Deno.env.get("HOME") ?? "/tmp",
    NO_COLOR: "1",
    ...LAUNCH_ENV,
    AGENT_RELAY_HOME: options.home,
    AGENT_RELAY_TOKEN: relay.token,
  };
  const args = [
    "run",
    "--agent-id",
    options.agentId,
    "--relay-url",
    relay.url,
    "--provider",
    "command",
    "--cwd",
    cwd,
    "--log-level",
    options.logLevel ?? "info",
    "--",
    ...options.agent,
  ];
  const spawnedAt = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: sandboxedRunArgs(join(APP_DIR, "main.ts"), args, env),
    env,
    clearEnv: true,
    cwd: APP_DIR,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  const exited = new AbortController();
  void (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      stderr = (stderr + chunk).slice(-4000);
    }
  })();
  void child.status.then((s) =>
    exited.abort(new Error(`the runner exited with code ${s.code}: ${stderr.trim()}`))
  );
  const infoFile = join(stateDir, "runner-info.json");
  let infoSeen: Promise<{ info: Record<string, unknown>; at: number }> | undefined;
  const info = () =>
    infoSeen ??= poll("the runner-info file", () => {
      try {
        const info = JSON.parse(Deno.readTextFileSync(infoFile)) as Record<string, unknown>;
        return info["pid"] === child.pid ? { info, at: performance.now() } : undefined;
      } catch {
        return undefined;
      }
    }, { signal: exited.signal });
  const base = async () => `http://127.0.0.1:${(await info()).info["controlPort"]}`;
  return {
    child,
    spawnedAt,
    stateDir,
    cwd,
    info,
    async controlReady() {
      const url = `${await base()}/health`;
      return await poll(
        "the control port",
        async () => (await answers(url)) ? performance.now() : undefined,
        { signal: exited.signal },
      );
    },
    async ready() {
      const url = `${await base()}/ready`;
      await poll("GET /ready", async () => (await answers(url)) || undefined, {
        everyMs: 20,
        signal: exited.signal,
      });
    },
    rss: () => rssOf(child.pid),
    async stop() {
      if (exited.signal.aborted) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // Gone.
        }
      }, 10_000);
      await child.status;
      clearTimeout(timer);
    },
  };
}

/** Milliseconds `deno run hello.ts` takes, spawn to exit (the start baseline). */
export async function helloOnce(dir: string): Promise<number> {
  const file = join(dir, "hello.ts");
  Deno.writeTextFileSync(file, `console.log("hello");\n`);
  const started = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", file],
    env: { ...LAUNCH_ENV, NO_COLOR: "1" },
    cwd: dir,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const elapsed = performance.now() - started;
  if (!out.success) {
    throw new Error(`deno run hello.ts failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return elapsed;
}

/** The median of `values`. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}
