/**
 * The runner as a real sandboxed child process against the reference relay, for the hardening
 * tests and `deno task fuzz`: start, stop, kill, wait, post reliably, read the relay's own
 * database, and the bash agents the scenarios drive.
 *
 * @module
 */
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { DevRelay } from "../../../src/dev_relay/mod.ts";
import type { Message } from "../../../src/types.ts";
import { spawnSandboxed } from "../../support/run_main.ts";
import { waitFor } from "../../support/wait.ts";
export { waitFor };

/** Polls `probe` every 25 ms until it gives a value, or throws after `timeoutMs`. */

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A runner child process. */
export interface RunningRunner {
  child: Deno.ChildProcess;
  agentId: string;
  home: string;
  stateDir: string;
  /** The exit code and output, once it exits. */
  output: Promise<{ code: number; stdout: string; stderr: string }>;
  /** The runner-info file, once written. */
  info(): Promise<Record<string, unknown>>;
  /** The log file's text. */
  log(): Promise<string>;
  logPath: string;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number>;
  /** SIGKILL, then the exit code. */
  kill(): Promise<number>;
}

/** Options of {@linkcode startRunner}. */
export interface RunnerOptions {
  agentId: string;
  /** `AGENT_RELAY_HOME`. */
  home: string;
  /** The provider program and its arguments. */
  program: string[];
  /** The provider's cwd (`--cwd`). */
  cwd?: string;
  /** More `run` flags. */
  extraArgs?: string[];
  /** More environment; `AGENT_RELAY_TOKEN` defaults to the relay's token. */
  env?: Record<string, string>;
  /** Default debug. */
  logLevel?: string;
  /** `--state-dir` (default `<home>/state/<agent>`). */
  stateDir?: string;
  /** `--log-dir` (default `<home>/logs`). */
  logDir?: string;
}

/** Starts `agent-relay-runner run --provider command` under the sandbox. */
export function startRunner(
  relayUrl: string,
  token: string,
  options: RunnerOptions,
): RunningRunner {
  const args = [
    "run",
    "--agent-id",
    options.agentId,
    "--relay-url",
    relayUrl,
    "--provider",
    "command",
    "--log-level",
    options.logLevel ?? "debug",
    ...(options.cwd ? ["--cwd", options.cwd] : []),
    ...(options.stateDir ? ["--state-dir", options.stateDir] : []),
    ...(options.logDir ? ["--log-dir", options.logDir] : []),
    ...(options.extraArgs ?? []),
    "--",
    ...options.program,
  ];
  const child = spawnSandboxed(args, {
    env: { AGENT_RELAY_HOME: options.home, AGENT_RELAY_TOKEN: token, ...options.env },
  });
  const decoder = new TextDecoder();
  const output = child.output().then((o) => ({
    code: o.code,
    stdout: decoder.decode(o.stdout),
    stderr: decoder.decode(o.stderr),
  }));
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
  return {
    child,
    agentId: options.agentId,
    home: options.home,
    stateDir,
    output,
    logPath,
    info: () =>
      waitFor("the runner-info file", async () => {
        try {
          const info = JSON.parse(await Deno.readTextFile(infoFile)) as Record<string, unknown>;
          return info["pid"] === child.pid ? info : undefined;
        } catch {
          return undefined;
        }
      }),
    log: () => Deno.readTextFile(logPath).catch(() => ""),
    stop: () => signal("SIGTERM"),
    kill: () => signal("SIGKILL"),
  };
}

/** Options of {@linkcode postMessage}. */
export interface PostOptions {
  from?: string;
  idempotencyKey?: string;
  /** Retry until stored (5xx, garbage, refused, 401 with a renewal), for this long. */
  retryForMs?: number;
}

/** A token holder for posting through faults (an expired root token gets renewed). */
export class Poster {
  #token: string;
  constructor(readonly relay: DevRelay) {
    this.#token = relay.token;
  }

  /** Posts a `chat` message to `to`; with `retryForMs`, keeps trying through every fault. */
  async post(to: string, body: string, options: PostOptions = {}): Promise<Message> {
    const deadline = Date.now() + (options.retryForMs ?? 0);
    const key = options.idempotencyKey ?? `test:${crypto.randomUUID()}`;
    for (;;) {
      let problem: string;
      try {
        const res = await fetch(`${this.relay.url}/api/messages`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${this.#token}`,
            "content-type": "application/json",
          },
          body: JSON.stringify({
            from: options.from ?? "user",
            to,
            kind: "chat",
            body,
            idempotencyKey: key,
          }),
          signal: AbortSignal.timeout(15_000),
        });
        const text = await res.text();
        if (res.status === 201 || res.status === 200) {
          try {
            return (JSON.parse(text) as { message: Message }).message;
          } catch {
            problem = `an unparseable ${res.status}: ${text.slice(0, 80)}`;
          }
        } else {
          problem = `${res.status} ${text.slice(0, 80)}`;
          if (res.status === 401) await this.#renew();
        }
      } catch (error) {
        problem = String(error);
      }
      if (Date.now() > deadline) throw new Error(`Posting "${body}" failed: ${problem}`);
      await sleep(100);
    }
  }

  async #renew(): Promise<void> {
    try {
      const res = await fetch(`${this.relay.url}/api/tokens/renew`, {
        method: "POST",
        headers: { authorization: `Bearer ${this.#token}` },
      });
      const text = await res.text();
      if (res.ok) this.#token = (JSON.parse(text) as { token: string }).token;
    } catch {
      // Retried by the caller.
    }
  }
}

/** The chat replies on the relay addressed to `to`. */
export function replies(relay: DevRelay, to = "user"): Message[] {
  return relay.admin.state().messages.filter((m) =>
    m.kind === "chat" && m.to === to && m.replyTo !== undefined
  );
}

/** Every `[sender, idempotency_key]` the relay stored for messages and insights. */
export function storedKeys(
  dbPath: string,
): { messages: Array<{ sender: string; key: string | null }>; insights: Array<string | null> } {
  const db = new DatabaseSync(dbPath, { readOnly: true });
  try {
    const messages = db.prepare("SELECT sender, idempotency_key AS key FROM messages")
      .all() as Array<
        { sender: string; key: string | null }
      >;
    const insights = (db.prepare("SELECT idempotency_key AS key FROM insights").all() as Array<
      { key: string | null }
    >).map((r) => r.key);
    return { messages, insights };
  } finally {
    db.close();
  }
}

/** The outbox's pending and poisoned records, read without taking its lock. */
export function outboxRecords(
  outboxFile: string,
): Array<{ seq: number; kind: string; key: string; payload: unknown; poisoned: boolean }> {
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(outboxFile, { readOnly: true, timeout: 2_000 });
  } catch {
    return [];
  }
  try {
    const read = (table: string, poisoned: boolean) =>
      (db.prepare(`SELECT seq, kind, idempotency_key AS key, payload FROM ${table}`).all() as Array<
        { seq: number; kind: string; key: string; payload: string }
      >).map((r) => ({ ...r, payload: JSON.parse(r.payload), poisoned }));
    return [...read("outbox", false), ...read("poisoned", true)];
  } finally {
    db.close();
  }
}

/** Percentiles of `values` (ms), for the reports. */
export function stats(values: number[]): { n: number; p50: number; p99: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  const round = (v: number) => Math.round(v * 10) / 10;
  return {
    n: sorted.length,
    p50: round(at(0.5)),
    p99: round(at(0.99)),
    max: round(sorted.at(-1) ?? NaN),
  };
}

/**
 * A bash `command` agent: writes its control port and secret to `control.txt` in its cwd (the
 * secret is only in its environment), logs each delivered message id to `received.txt`, and
 * answers each with a step and a response carrying `replyTo`. With `fatal`, it also reports a
 * hook failure per message to `/hook-fatal` (logging `fatal-try` before and `fatal-ok` after a
 * 200), like a broken hook would.
 */
export function streamAgent(options: { fatal?: boolean; delay?: string } = {}): string[] {
  const fatal = options.fatal
    ? `echo "fatal-try h$id" >> fatals.txt
  if curl -fsS --max-time 2 -o /dev/null -X POST -H @/dev/fd/3 \\
      -H 'Content-Type: application/json' \\
      --data-binary "{\\"hook\\":\\"h$id\\",\\"error\\":\\"broken on purpose\\"}" \\
      "http://127.0.0.1:$AGENT_RELAY_RUNNER_PORT/hook-fatal" \\
      3<<<"Authorization: Bearer $AGENT_RELAY_RUNNER_SECRET"; then
    echo "fatal-ok h$id" >> fatals.txt
  fi`
    : "";
  const script = `set -u
printf '%s\\n%s\\n' "$AGENT_RELAY_RUNNER_PORT" "$AGENT_RELAY_RUNNER_SECRET" > control.tmp
mv control.tmp control.txt
while IFS= read -r line; do
  id=\${line#*\\"id\\":}; id=\${id%%,*}
  echo "$id" >> received.txt
  ${options.delay ? `sleep ${options.delay}` : ""}
  echo "{\\"type\\":\\"step\\",\\"kind\\":\\"tool_use\\",\\"text\\":\\"step for $id\\"}"
  ${fatal}
  echo "{\\"type\\":\\"response\\",\\"text\\":\\"done $id\\",\\"replyTo\\":$id}"
done
`;
  return ["bash", "-c", script];
}

/** Reads `control.txt` written by {@linkcode streamAgent}: the runner's port and secret. */
export function readControl(agentCwd: string): Promise<{ port: number; secret: string }> {
  return waitFor("the agent's control.txt", async () => {
    try {
      const [port, secret] = (await Deno.readTextFile(join(agentCwd, "control.txt"))).split("\n");
      return port && secret ? { port: Number(port), secret } : undefined;
    } catch {
      return undefined;
    }
  });
}

/** The lines of a text file in `dir` (none when it does not exist). */
export async function lines(dir: string, name: string): Promise<string[]> {
  try {
    return (await Deno.readTextFile(join(dir, name))).split("\n").filter((l) => l !== "");
  } catch {
    return [];
  }
}
