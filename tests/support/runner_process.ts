/**
 * The runner as a real child process under its sandbox (`main.ts run`, started the way
 * `deno task start` does), against a relay the test runs: start it, read its runner-info file,
 * log and `/status`, wait for it to settle, stop or kill it.
 *
 * @module
 */
import { join } from "node:path";
import type { DevRelay } from "../../src/dev_relay/mod.ts";
import { outboxPath } from "../../src/outbox/mod.ts";
import type { ProviderName } from "../../src/types.ts";
import { type RunOutput, spawnSandboxed } from "./run_main.ts";
import { waitFor } from "./wait.ts";

/** Options of {@linkcode startRunner}. */
export interface RunnerOptions {
  agentId: string;
  /** `AGENT_RELAY_HOME`. */
  home: string;
  /** Default `command`. */
  provider?: ProviderName;
  /** What follows `--`: for `command`, the program and its arguments. */
  providerArgs?: string[];
  /** The provider's cwd (`--cwd`). */
  cwd?: string;
  /** `--state-dir` (default `<home>/state/<agent>`). */
  stateDir?: string;
  /** `--log-dir` (default `<home>/logs`). */
  logDir?: string;
  /** Default `debug`. */
  logLevel?: string;
  /** More `run` flags. */
  extraArgs?: string[];
  /** More environment; `AGENT_RELAY_TOKEN` defaults to the relay's token. */
  env?: Record<string, string>;
  /** Another copy of the program's main.ts (default this one). */
  script?: string;
}

/** What `GET /status` shows (the fields the tests read). */
export interface RunnerStatus {
  status: string;
  outbox: { pending: number; poisoned: number };
  pendingMessages: number;
  [field: string]: unknown;
}

/** A runner child process. */
export interface RunningRunner {
  readonly child: Deno.ChildProcess;
  readonly agentId: string;
  readonly home: string;
  readonly stateDir: string;
  readonly logPath: string;
  /** The outbox file (in `<stateDir>/outbox` unless the environment moves it). */
  readonly outboxFile: string;
  /** The exit code and output, once it exits. */
  readonly output: Promise<RunOutput>;
  /** Aborts when the runner exits: pass it to `waitFor` to stop waiting on a dead runner. */
  readonly exited: AbortSignal;
  /** This run's runner-info file, once written. */
  info(): Promise<Record<string, unknown>>;
  /** The control server's port and secret (from the runner-info and control-secret files). */
  control(): Promise<{ port: number; secret: string }>;
  /** `GET /status` on the control server. */
  status(): Promise<RunnerStatus>;
  /**
   * Waits until nothing is left to do: the provider idle, no message waiting for it and nothing
   * in the outbox, so whatever the runner was going to store on the relay is there.
   */
  settled(timeoutMs?: number): Promise<RunnerStatus>;
  /**
   * Waits until the outbox is empty: every event the runner has queued so far is on the relay
   * (the provider may still be busy).
   */
  drained(timeoutMs?: number): Promise<RunnerStatus>;
  /** The log file's text (empty until it exists). */
  log(): Promise<string>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number>;
  /** SIGKILL, then the exit code. */
  kill(): Promise<number>;
}

/** Starts `main.ts run` under the sandbox; the caller stops it. */
export function startRunner(
  relay: Pick<DevRelay, "url" | "token">,
  options: RunnerOptions,
): RunningRunner {
  const args = [
    "run",
    "--agent-id",
    options.agentId,
    "--relay-url",
    relay.url,
    "--provider",
    options.provider ?? "command",
    "--log-level",
    options.logLevel ?? "debug",
    ...(options.cwd ? ["--cwd", options.cwd] : []),
    ...(options.stateDir ? ["--state-dir", options.stateDir] : []),
    ...(options.logDir ? ["--log-dir", options.logDir] : []),
    ...(options.extraArgs ?? []),
    ...(options.providerArgs?.length ? ["--", ...options.providerArgs] : []),
  ];
  const child = spawnSandboxed(args, {
    env: { AGENT_RELAY_HOME: options.home, AGENT_RELAY_TOKEN: relay.token, ...options.env },
    ...(options.script ? { script: options.script } : {}),
  });
  const decoder = new TextDecoder();
  const output = child.output().then((o) => ({
    code: o.code,
    stdout: decoder.decode(o.stdout),
    stderr: decoder.decode(o.stderr),
  }));
  const exit = new AbortController();
  output.then(({ code }) => exit.abort(new Error(`the runner exited with code ${code}`)));
  const stateDir = options.stateDir ?? join(options.home, "state", options.agentId);
  const infoFile = join(stateDir, "runner-info.json");
  const logPath = join(
    options.logDir ?? join(options.home, "logs"),
    `session-mirror-${options.agentId}.log`,
  );
  const signal = async (name: Deno.Signal) => {
    try {
      child.kill(name);
    } catch {
      // Already gone.
    }
    return (await output).code;
  };
  const info = () =>
    waitFor("the runner-info file", async () => {
      try {
        const info = JSON.parse(await Deno.readTextFile(infoFile)) as Record<string, unknown>;
        return info["pid"] === child.pid ? info : undefined;
      } catch {
        return undefined;
      }
    }, { signal: exit.signal });
  let control: Promise<{ port: number; secret: string }> | undefined;
  const readControl = () =>
    control ??= info().then(async (i) => ({
      port: i["controlPort"] as number,
      secret: (await Deno.readTextFile(join(stateDir, "control-secret"))).trim(),
    }));
  const status = async () => {
    const { port, secret } = await readControl();
    const res = await fetch(`http://127.0.0.1:${port}/status`, {
      headers: { authorization: `Bearer ${secret}` },
    });
    if (!res.ok) throw new Error(`GET /status answered ${res.status}: ${await res.text()}`);
    return await res.json() as RunnerStatus;
  };
  return {
    child,
    agentId: options.agentId,
    home: options.home,
    stateDir,
    logPath,
    outboxFile: outboxPath(
      options.env?.["AGENT_RELAY_RUNNER_OUTBOX_DIR"] ?? join(stateDir, "outbox"),
    ),
    output,
    exited: exit.signal,
    info,
    control: readControl,
    status,
    settled: (timeoutMs = 20_000) =>
      waitFor("the runner to settle (idle, nothing queued)", async () => {
        const s = await status().catch(() => undefined);
        return s?.status === "idle" && s.pendingMessages === 0 && s.outbox.pending === 0 && s;
      }, { signal: exit.signal, timeoutMs }),
    drained: (timeoutMs = 20_000) =>
      waitFor("the runner's outbox to drain", async () => {
        const s = await status().catch(() => undefined);
        return s?.outbox.pending === 0 && s;
      }, { signal: exit.signal, timeoutMs }),
    log: () => Deno.readTextFile(logPath).catch(() => ""),
    stop: () => signal("SIGTERM"),
    kill: () => signal("SIGKILL"),
  };
}
