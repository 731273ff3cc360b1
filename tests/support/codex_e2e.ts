/**
 * The runner driving the real Codex CLI, for its end-to-end tests: a runner child process
 * ({@linkcode startRunner}) launched with `--provider codex` on a {@linkcode CodexSandbox}, and
 * a view of the processes it started.
 *
 * The runner's sandbox grants env access only to the variables of src/config/env.ts, but Codex
 * inherits the runner's whole environment (spawning with `env` adds to it and needs no env
 * permission). So the sandbox's variables (CODEX_HOME, HOME, TMPDIR, the namespace wrapper's
 * CODEX_NETNS_*) are put into the runner's own environment, and `AGENT_RELAY_CODEX_BIN` names
 * the wrapper: the only executable the sandbox lets the runner start. Since HOME is the
 * sandbox's, `DENO_DIR` names this Deno's cache, where the runner's npm dependencies are.
 *
 * @module
 */
import { join } from "node:path";
import type { DevRelay } from "../../src/dev_relay/mod.ts";
import type { PermissionPolicy } from "../../src/types.ts";
import type { CodexSandbox } from "./codex_sandbox.ts";
import { cmdline, descendants, reap } from "./process_tree.ts";
import { type RunningRunner, startRunner } from "./runner_process.ts";

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

/** A runner child process driving Codex. */
export interface CodexRunner extends RunningRunner {
  /**
   * Stops the runner with SIGTERM and resolves with its exit code; then waits (bounded) for every
   * process it started to be gone, killing any that stay (by pid) and reporting them.
   */
  stopAll(): Promise<{ code: number; leftovers: number[] }>;
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
  const runner = startRunner(relay, {
    agentId: options.agentId,
    home: join(sandbox.dir, "relay-home"),
    provider: "codex",
    cwd: sandbox.cwd,
    extraArgs: ["--permission-policy", options.permissionPolicy],
    ...(options.providerArgs ? { providerArgs: options.providerArgs } : {}),
    env: {
      ...sandbox.env,
      AGENT_RELAY_CODEX_BIN: sandbox.bin,
      DENO_DIR: options.denoDir ?? denoDir(),
    },
  });
  let stopped: Promise<{ code: number; leftovers: number[] }> | undefined;
  return {
    ...runner,
    stopAll: () =>
      stopped ??= (async () => {
        const started = descendants(runner.child.pid);
        const code = await runner.stop();
        const leftovers = await reap(started, 5_000);
        return { code, leftovers };
      })(),
  };
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
