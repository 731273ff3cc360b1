/**
 * `agent-relay-runner outbox stats|list|poisoned|requeue|purge`: the operator's view of an
 * agent's durable outbox (docs/outbox.md).
 *
 * The file is found as `run` finds it: `$AGENT_RELAY_RUNNER_OUTBOX_DIR/outbox.sqlite`, else
 * `<state dir>/outbox/outbox.sqlite`, the state dir being `--state-dir` or
 * `<AGENT_RELAY_HOME or ~/.agent-relay>/state/<agent id>`. `stats`, `list` and `poisoned` read
 * it without taking its lock, so they work while the runner runs; `requeue` and `purge` take
 * the lock, so they refuse, naming the runner's pid, while it runs.
 *
 * @module
 */
import { parseAgentId, parseFlags, resolveOutboxDir, UsageError } from "../config/mod.ts";
import {
  inspectOutbox,
  Outbox,
  OutboxLockedError,
  outboxLockHeld,
  outboxPath,
  type OutboxRecord,
  type OutboxSnapshot,
  type PoisonedRecord,
} from "../outbox/mod.ts";
import { errorText, escapeText } from "../util/mod.ts";
import { writer } from "./output.ts";

/** The help text of `agent-relay-runner outbox`. */
export const OUTBOX_HELP =
  `Usage: agent-relay-runner outbox <command> (--agent-id ID | --state-dir DIR) [options]

Inspect and repair an agent's durable outbox: the events waiting to reach the relay.
The file is $AGENT_RELAY_RUNNER_OUTBOX_DIR/outbox.sqlite if that is set, else
<state dir>/outbox/outbox.sqlite, the state dir being --state-dir or
<AGENT_RELAY_HOME or ~/.agent-relay>/state/<agent id> (as for "run").

Commands:
  stats                                counts: pending, poisoned, delivered, dropped, last error
  list [--limit N]                     pending events, in delivery order
  poisoned [--limit N]                 events the relay refused permanently
  requeue (--seq N | --all)            put poisoned events back in the queue
  purge (--seq N | --poisoned | --all) delete events for good

Options:
  --agent-id ID      the agent, as given to "run"
  --state-dir DIR    the agent's state dir
  --limit N          list at most N events (default 50)
  --json             JSON output (list and poisoned: one JSON object per line)
  -h, --help         this help

stats, list and poisoned work while the runner runs. requeue and purge need it stopped:
they refuse, naming the runner's pid, while it holds the outbox.

Exit codes: 0 done; 1 no outbox, runner running, or nothing matched; 2 bad usage.
`;

const FLAGS = {
  "agent-id": { type: "string" },
  "state-dir": { type: "string" },
  "limit": { type: "string" },
  "seq": { type: "string" },
  "all": { type: "boolean" },
  "poisoned": { type: "boolean" },
  "json": { type: "boolean" },
  "help": { type: "boolean", short: "h" },
} as const;

const COMMANDS = ["stats", "list", "poisoned", "requeue", "purge"] as const;
type Command = typeof COMMANDS[number];

/** Where the command writes (injected in tests). */
export interface OutboxCommandOptions {
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
}

function parseWhole(value: string, name: string, min: number): number {
  if (!/^\d{1,15}$/.test(value.trim()) || Number(value) < min) {
    throw new UsageError(`${name} "${value}" is not a whole number >= ${min}`);
  }
  return Number(value);
}

function iso(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return "-";
  try {
    return new Date(ms).toISOString();
  } catch {
    return String(ms);
  }
}

function preview(value: unknown, max = 100): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? "null";
  } catch {
    text = String(value);
  }
  text = text.replace(/\s+/g, " ");
  return text.length > max ? `${text.slice(0, max)}...` : text;
}

function recordLine(record: OutboxRecord | PoisonedRecord): string {
  const parts = [
    `seq=${record.seq}`,
    `kind=${record.kind}`,
    `mode=${record.mode}`,
    `attempts=${record.attempts}`,
    `occurredAt=${iso(record.occurredAt)}`,
  ];
  if (record.dedupeKey !== undefined) parts.push(`dedupeKey=${record.dedupeKey}`);
  parts.push(`key=${record.idempotencyKey}`);
  if ("poisonedAt" in record) parts.push(`poisonedAt=${iso(record.poisonedAt)}`);
  if (record.lastError !== undefined) parts.push(`error=${JSON.stringify(record.lastError)}`);
  parts.push(`payload=${preview(record.payload)}`);
  // A kind, key or payload is whatever a caller stored: never let it move the cursor or forge a line.
  return escapeText(parts.join(" "));
}

function fileExists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * Runs `agent-relay-runner outbox ARGS`. Resolves to the exit code: 0 done, 1 runtime error (no
 * outbox, runner holds it, nothing matched), 2 bad usage (one line on stderr). The work is
 * synchronous (SQLite); the promise keeps the signature of the other commands.
 */
export function outboxCommand(
  args: string[],
  env: Record<string, string | undefined>,
  options: OutboxCommandOptions = {},
): Promise<number> {
  try {
    return Promise.resolve(runOutboxCommand(args, env, options));
  } catch (error) {
    return Promise.reject(error);
  }
}

function runOutboxCommand(
  args: string[],
  env: Record<string, string | undefined>,
  options: OutboxCommandOptions,
): number {
  const out = options.stdout ?? writer(Deno.stdout);
  const err = options.stderr ?? writer(Deno.stderr);
  const fail = (message: string, code: number) => {
    err(`agent-relay-runner outbox: ${message}\n`);
    return code;
  };

  let command: Command;
  let values: Record<string, string | boolean | undefined>;
  let path: string;
  let limit = 50;
  let seq: number | undefined;
  try {
    const parsed = parseFlags(args, FLAGS, { command: "outbox" });
    values = parsed.values;
    if (values["help"] === true) {
      out(OUTBOX_HELP);
      return 0;
    }
    if (parsed.rest.length > 0) {
      throw new UsageError(`unexpected argument "${parsed.rest[0]}" for "outbox"`);
    }
    const [first, ...extra] = parsed.positionals;
    if (first === undefined) {
      throw new UsageError(`missing command: one of ${COMMANDS.join(", ")} (see --help)`);
    }
    if (!(COMMANDS as readonly string[]).includes(first)) {
      throw new UsageError(
        `unknown command "${first}" for "outbox": one of ${COMMANDS.join(", ")}`,
      );
    }
    command = first as Command;
    if (extra.length > 0) {
      throw new UsageError(`unexpected argument "${extra[0]}" for "outbox ${command}"`);
    }
    const str = (name: string) => typeof values[name] === "string" ? values[name] : undefined;
    const agentId = str("agent-id");
    if (agentId !== undefined) parseAgentId(agentId);
    path = outboxPath(resolveOutboxDir({ agentId, stateDir: str("state-dir") }, env));
    const limitRaw = str("limit");
    if (limitRaw !== undefined) {
      if (command !== "list" && command !== "poisoned") {
        throw new UsageError(`--limit applies to list and poisoned, not ${command}`);
      }
      limit = parseWhole(limitRaw, "--limit", 1);
    }
    const seqRaw = str("seq");
    if (seqRaw !== undefined) seq = parseWhole(seqRaw, "--seq", 1);
    const all = values["all"] === true;
    const poisoned = values["poisoned"] === true;
    if (command === "requeue" || command === "purge") {
      const chosen = [seq !== undefined, all, poisoned].filter(Boolean).length;
      if (command === "requeue" && poisoned) {
        throw new UsageError("requeue takes --seq N or --all (it always moves poisoned events)");
      }
      if (chosen !== 1) {
        throw new UsageError(
          command === "requeue"
            ? "requeue needs exactly one of --seq N or --all"
            : "purge needs exactly one of --seq N, --poisoned or --all",
        );
      }
    } else if (seq !== undefined || all || poisoned) {
      throw new UsageError(
        `--seq, --all and --poisoned apply to requeue and purge, not ${command}`,
      );
    }
  } catch (error) {
    if (error instanceof UsageError) return fail(error.message, 2);
    throw error;
  }

  if (!fileExists(path)) {
    return fail(`no outbox at ${path} (has the runner run with this agent id or state dir?)`, 1);
  }
  const json = values["json"] === true;

  if (command === "stats" || command === "list" || command === "poisoned") {
    let snapshot: OutboxSnapshot;
    try {
      snapshot = inspectOutbox(path, { limit });
    } catch (error) {
      return fail(errorText(error), 1);
    }
    const running = outboxLockHeld(path);
    if (command === "stats") {
      const { pendingRecords: _p, poisonedRecords: _q, ...counts } = snapshot;
      if (json) {
        out(`${JSON.stringify({ ...counts, runnerRunning: running })}\n`);
      } else {
        const runner = running ? `running (pid ${snapshot.holderPid ?? "unknown"})` : "not running";
        const lines = [
          `outbox     ${path}`,
          `runner     ${runner}`,
          `pending    ${snapshot.pending}`,
          `poisoned   ${snapshot.poisoned}`,
          `delivered  ${snapshot.delivered}`,
          `dropped    ${snapshot.dropped}`,
          `oldest     ${iso(snapshot.oldestPendingAt)}`,
          `last error ${
            snapshot.lastError === undefined
              ? "-"
              : `${iso(snapshot.lastErrorAt)} ${snapshot.lastError}`
          }`,
        ];
        out(`${lines.join("\n")}\n`);
      }
      return 0;
    }
    const records = command === "list" ? snapshot.pendingRecords : snapshot.poisonedRecords;
    const total = command === "list" ? snapshot.pending : snapshot.poisoned;
    if (json) {
      out(records.map((r) => `${JSON.stringify(r)}\n`).join(""));
    } else {
      const body = records.map((r) => `${recordLine(r)}\n`).join("");
      const what = command === "list" ? "pending" : "poisoned";
      out(`${body}${records.length} of ${total} ${what} event(s) shown\n`);
    }
    return 0;
  }

  let outbox: Outbox;
  try {
    outbox = new Outbox({
      path,
      agentId: typeof values["agent-id"] === "string" ? values["agent-id"] : "operator",
    });
  } catch (error) {
    if (error instanceof OutboxLockedError) {
      return fail(
        `the runner (pid ${error.pid ?? "unknown"}) holds ${path}; stop it before "${command}" ` +
          `(stats, list and poisoned work while it runs)`,
        1,
      );
    }
    return fail(errorText(error), 1);
  }
  try {
    if (command === "requeue") {
      const moved = outbox.requeue(seq);
      if (moved === 0) {
        return fail(
          seq === undefined ? "no poisoned events to requeue" : `no poisoned event with seq ${seq}`,
          1,
        );
      }
      out(json ? `${JSON.stringify({ requeued: moved })}\n` : `requeued ${moved} event(s)\n`);
      return 0;
    }
    const target = seq !== undefined
      ? { seq }
      : values["poisoned"] === true
      ? { poisoned: true as const }
      : { all: true as const };
    const removed = outbox.purge(target);
    if (removed === 0 && seq !== undefined) return fail(`no event with seq ${seq}`, 1);
    out(json ? `${JSON.stringify({ purged: removed })}\n` : `purged ${removed} event(s)\n`);
    return 0;
  } catch (error) {
    return fail(errorText(error), 1);
  } finally {
    outbox.close();
  }
}

if (import.meta.main) {
  Deno.exit(await outboxCommand(Deno.args, Deno.env.toObject()));
}
