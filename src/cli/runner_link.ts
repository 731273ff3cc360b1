/**
 * How the operator commands (`status`, `attach`) find a running runner: its state dir (as `run`
 * resolves it), the runner-info file there (the control port), the control secret next to it,
 * and `GET /status` on 127.0.0.1. "No runner" is one clear {@linkcode NoRunnerError} line.
 *
 * @module
 */
import { baseDir, type Env, parseAgentId, UsageError } from "../config/mod.ts";
import { safeLogName } from "../logger.ts";
import { errorText, escapeText, isAbsolute, join, resolve } from "../util/mod.ts";

/** The flags every operator command shares to name the runner. */
export const TARGET_FLAGS = {
  "agent-id": { type: "string" },
  "state-dir": { type: "string" },
  "info-file": { type: "string" },
} as const;

/** Which runner a command talks to. */
export interface RunnerTarget {
  /** For messages: the agent id, or the state dir when only that was given. */
  label: string;
  agentId: string | undefined;
  stateDir: string;
  infoFile: string;
}

/** The runner-info fields the operator commands read. */
export interface LinkedInfo {
  pid: number;
  agentId: string;
  provider: string;
  controlPort: number;
  startedAt?: string;
  logFile?: string;
  [field: string]: unknown;
}

/** A runner found: its info file and control secret. */
export interface RunnerLink {
  target: RunnerTarget;
  info: LinkedInfo;
  secret: string;
  /** `http://127.0.0.1:<port>`. */
  baseUrl: string;
}

/** No runner is running for the target (exit 1, one line). */
export class NoRunnerError extends Error {
  override name = "NoRunnerError";
}

/** Resolves the target from `--agent-id`, `--state-dir`, `--info-file` and the environment. */
export function resolveTarget(
  values: Record<string, string | boolean | undefined>,
  env: Env,
): RunnerTarget {
  const str = (name: string) => typeof values[name] === "string" ? values[name] : undefined;
  const rawId = str("agent-id");
  const stateFlag = str("state-dir");
  if (rawId === undefined && stateFlag === undefined) {
    throw new UsageError("missing required flag --agent-id (or --state-dir)");
  }
  const agentId = rawId === undefined ? undefined : parseAgentId(rawId);
  const stateDir = resolve(stateFlag ?? join(baseDir(env), "state", safeLogName(agentId!)));
  const infoRaw = str("info-file") ?? (env["AGENT_RELAY_RUNNER_INFO_FILE"] || undefined);
  const infoFile = infoRaw
    ? (isAbsolute(infoRaw) ? infoRaw : resolve(infoRaw))
    : join(stateDir, "runner-info.json");
  return { label: agentId ?? stateDir, agentId, stateDir, infoFile };
}

function parseInfo(text: string, path: string): LinkedInfo {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new NoRunnerError(
      `The runner-info file ${path} is not JSON (a runner still writing it?)`,
    );
  }
  const info = value as Partial<LinkedInfo> | null;
  const port = info?.controlPort;
  if (
    typeof info !== "object" || info === null || typeof port !== "number" ||
    !Number.isInteger(port) || port < 1 || port > 65535
  ) {
    throw new NoRunnerError(`The runner-info file ${path} names no control port`);
  }
  return info as LinkedInfo;
}

/**
 * Reads the runner-info file and the control secret of `target`. Throws
 * {@linkcode NoRunnerError} when there is no info file (no runner running).
 */
export async function readLink(target: RunnerTarget): Promise<RunnerLink> {
  let text: string;
  try {
    text = await Deno.readTextFile(target.infoFile);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new NoRunnerError(
        `No runner is running for ${target.label}: there is no runner-info file ${target.infoFile}`,
      );
    }
    throw new NoRunnerError(
      `Cannot read the runner-info file ${target.infoFile}: ${errorText(error)}`,
    );
  }
  const info = parseInfo(text, target.infoFile);
  if (target.agentId !== undefined && info.agentId !== target.agentId) {
    throw new NoRunnerError(
      `The runner-info file ${target.infoFile} is for agent ${
        JSON.stringify(escapeText(String(info.agentId)))
      }, not ${target.agentId}`,
    );
  }
  const secretFile = join(target.stateDir, "control-secret");
  let secret: string;
  try {
    secret = (await Deno.readTextFile(secretFile)).trim();
  } catch (error) {
    throw new NoRunnerError(`Cannot read the control secret ${secretFile}: ${errorText(error)}`);
  }
  return { target, info, secret, baseUrl: `http://127.0.0.1:${info.controlPort}` };
}

/** Reads at most `limit` bytes of a response's body as text; throws past it. */
export async function boundedText(res: Response, limit: number): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limit) throw new Error(`the answer is larger than ${limit} bytes`);
      chunks.push(value);
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.byteLength;
  }
  return new TextDecoder().decode(all);
}

/**
 * `GET /status` on the runner of `link`. A port that does not answer means the runner is gone
 * (a stale info file): {@linkcode NoRunnerError}.
 */
export async function fetchStatus(
  link: RunnerLink,
  options: { signal?: AbortSignal; timeoutMs?: number } = {},
): Promise<Record<string, unknown>> {
  const timeout = AbortSignal.timeout(options.timeoutMs ?? 5_000);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  const where = `pid ${link.info.pid}, control port ${link.info.controlPort}`;
  let res: Response;
  try {
    res = await fetch(`${link.baseUrl}/status`, {
      headers: { authorization: `Bearer ${link.secret}` },
      signal,
    });
  } catch (error) {
    throw new NoRunnerError(
      `No runner is running for ${link.target.label}: the runner-info file names ${where}, ` +
        `which does not answer (${errorText(error)}; a runner killed without a clean stop?)`,
    );
  }
  const text = await boundedText(res, 1024 * 1024).catch((error) => {
    throw new NoRunnerError(`GET /status on ${where} failed: ${errorText(error)}`);
  });
  if (res.status === 401) {
    throw new NoRunnerError(
      `The runner on ${where} refused the control secret of ${link.target.stateDir} (another runner?)`,
    );
  }
  if (!res.ok) {
    throw new NoRunnerError(
      `GET /status on ${where} answered ${res.status}: ${escapeText(text.slice(0, 200))}`,
    );
  }
  try {
    const value = JSON.parse(text);
    if (typeof value === "object" && value !== null && !Array.isArray(value)) return value;
  } catch {
    // Reported below.
  }
  throw new NoRunnerError(`GET /status on ${where} did not answer a JSON object`);
}
