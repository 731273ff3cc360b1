/**
 * Helpers for the runner's end-to-end tests with the real Codex CLI: a runner child process under
 * the sandbox, launched with `--provider codex` on a {@linkcode CodexSandbox}, and a view of the
 * processes it started.
 *
 * The runner's sandbox grants env access only to the variables of src/env.ts, but Codex inherits
 * the runner's whole environment (spawning with `env` adds to it and needs no env permission).
 * So the sandbox's variables (CODEX_HOME, HOME, TMPDIR, the namespace wrapper's CODEX_NETNS_*)
 * are put into the runner's own environment, and `AGENT_RELAY_CODEX_BIN` names the wrapper: the
 * only executable the sandbox lets the runner start. Since HOME is the sandbox's, `DENO_DIR` names
 * this Deno's cache, where the runner's npm dependencies are.
 *
 * @module
 */
import { join } from "node:path";
import type { DevRelay } from "../../src/dev_relay/mod.ts";
import type { PermissionPolicy } from "../../src/types.ts";
import type { CodexSandbox } from "./codex_sandbox.ts";
import { spawnSandboxed } from "./run_main.ts";

/** This Deno's cache dir (`deno info --json`), so a child with another HOME finds its modules. */
export function denoDir(): string {
  if (cachedDenoDir !== undefined) return cachedDenoDir;
  const out = new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "null",
  }).outputSync();
  const dir = (JSON.parse(new TextDecoder().decode(out.stdout)) as { denoDir?: unknown }).denoDir;
  if (typeof dir !== "string" || dir === "") throw new Error("deno info named no DENO_DIR");
  return cachedDenoDir = dir;
}
let cachedDenoDir: string | undefined;

/** A finished runner's exit code and output. */
export interface RunnerOutput {
  code: number;
  stdout: string;
  stderr: string;
}

/** A runner child process driving Codex. */
export interface CodexRunner {
  readonly child: Deno.ChildProcess;
  readonly agentId: string;
  /** AGENT_RELAY_HOME of the runner. */
  readonly home: string;
  /** `<home>/state/<agent>`. */
  readonly stateDir: string;
  readonly output: Promise<RunnerOutput>;
  /** The runner's log file (empty until it exists). */
  log(): Promise<string>;
  /**
   * Stops the runner with SIGTERM and resolves with its exit code; then waits (bounded) for every
   * process it started to be gone, killing any that stay (by pid) and reporting them.
   */
  stop(): Promise<{ code: number; leftovers: number[] }>;
}

/** Options of {@linkcode startCodexRunner}. */
export interface CodexRunnerOptions {
  agentId: string;
  permissionPolicy: PermissionPolicy;
  /** Arguments for `codex app-server` (after `--`). */
  providerArgs?: string[];
  /** The Deno cache dir for the runner; default {@linkcode denoDir}. */
  denoDir?: string;
}

/** Starts `main.ts run --provider codex` under the sandbox, Codex in the sandbox's namespace. */
export function startCodexRunner(
  relay: DevRelay,
  sandbox: CodexSandbox,
  options: CodexRunnerOptions,
): CodexRunner {
  const home = join(sandbox.dir, "relay-home");
  const args = [
    "run",
    "--provider",
    "codex",
    "--agent-id",
    options.agentId,
    "--relay-url",
    relay.url,
    "--permission-policy",
    options.permissionPolicy,
    "--cwd",
    sandbox.cwd,
    "--log-level",
    "debug",
    ...(options.providerArgs?.length ? ["--", ...options.providerArgs] : []),
  ];
  const child = spawnSandboxed(args, {
    env: {
      ...sandbox.env,
      AGENT_RELAY_HOME: home,
      AGENT_RELAY_TOKEN: relay.token,
      AGENT_RELAY_CODEX_BIN: sandbox.bin,
      DENO_DIR: options.denoDir ?? denoDir(),
    },
  });
  const decoder = new TextDecoder();
  const output = child.output().then((o) => ({
    code: o.code,
    stdout: decoder.decode(o.stdout),
    stderr: decoder.decode(o.stderr),
  }));
  const logFile = join(home, "logs", `session-mirror-${options.agentId}.log`);
  let stopped: Promise<{ code: number; leftovers: number[] }> | undefined;
  return {
    child,
    agentId: options.agentId,
    home,
    stateDir: join(home, "state", options.agentId),
    output,
    log: () => Deno.readTextFile(logFile).catch(() => ""),
    stop: () =>
      stopped ??= (async () => {
        const started = descendants(child.pid);
        try {
          child.kill("SIGTERM");
        } catch {
          // Already gone.
        }
        const { code } = await output;
        const leftovers = await reap(started, 5_000);
        return { code, leftovers };
      })(),
  };
}

/** Every live descendant of `pid` (children of all its threads, recursively). */
export function descendants(pid: number): number[] {
  const found: number[] = [];
  const visit = (parent: number) => {
    let tasks: Deno.DirEntry[];
    try {
      tasks = [...Deno.readDirSync(`/proc/${parent}/task`)];
    } catch {
      return; // Gone meanwhile.
    }
    for (const task of tasks) {
      let list = "";
      try {
        list = Deno.readTextFileSync(`/proc/${parent}/task/${task.name}/children`);
      } catch {
        continue; // The thread ended meanwhile.
      }
      for (const child of list.trim().split(/\s+/).filter(Boolean).map(Number)) {
        if (found.includes(child)) continue;
        found.push(child);
        visit(child);
      }
    }
  };
  visit(pid);
  return found;
}

/** A process's argv, or `undefined` once it is gone (or a zombie). */
export function cmdline(pid: number): string[] | undefined {
  try {
    const argv = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").filter(Boolean);
    return argv.length > 0 ? argv : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The pid of the native `codex app-server` binary among the runner's descendants (the npm
 * launcher, a node script, may run it as its child or `execve` into it).
 */
export function nativeCodexPid(runnerPid: number): number | undefined {
  for (const pid of descendants(runnerPid)) {
    const argv = cmdline(pid);
    if (!argv || !argv.includes("app-server")) continue;
    const exe = argv[0] ?? "";
    if (exe.endsWith("/bin/codex") && exe.includes("/vendor/")) return pid;
  }
  return undefined;
}

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** Waits up to `ms` for `pids` to exit; SIGKILLs the ones left and returns them. */
async function reap(pids: number[], ms: number): Promise<number[]> {
  const deadline = Date.now() + ms;
  let left = pids.filter(alive);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    left = left.filter(alive);
  }
  for (const pid of left) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // Gone meanwhile.
    }
  }
  return left;
}
