/**
 * `agent-relay-runner send --relay URL --to AGENT [--from user] [--token T]
 * [--wait-reply SECONDS] TEXT`: posts a `chat` message to an agent through the relay and
 * prints it as one JSON line; with `--wait-reply` it then waits for the message that answers
 * it (`replyTo` = its id), prints that too, and marks it read. While it waits, each receipt
 * the relay holds for the message (`received`, `handed`, `answered`, `failed`) is shown on
 * stderr as it appears, one line each (`receipt: handed (alice)`).
 *
 * The relay URL may also come from `AGENT_RELAY_URL`, the token from `AGENT_RELAY_TOKEN`
 * (default `dev`, the reference relay's). Exit codes: 0 sent (and answered), 1 the relay
 * failed, no reply came in time, or the reply is a failure reply (`payload: {status:
 * "failed", error}`: its error goes to stderr), 2 bad usage.
 *
 * @module
 */
import { type Env, parseFlags, parseRelayUrl, UsageError } from "../config/mod.ts";
import { type Receipt, RelayError, RelayHttpClient } from "../relay/mod.ts";
import type { Message } from "../types.ts";
import { type Clock, errorText, escapeText, systemClock } from "../util/mod.ts";
import { lineWriter } from "./output.ts";

/** Options of {@linkcode sendCommand} (tests). */
export interface SendCommandOptions {
  /** Cancels the wait for a reply. */
  signal?: AbortSignal;
  /** Where stdout lines go. Default: stdout. */
  stdout?: (line: string) => void;
  /** Where stderr lines go. Default: stderr. */
  stderr?: (line: string) => void;
  /** Milliseconds between polls for the reply. Default 250. */
  pollIntervalMs?: number;
  /** Time and the poll timer. Default the system clock. */
  clock?: Clock;
}

const FLAGS = {
  relay: { type: "string" },
  to: { type: "string" },
  from: { type: "string" },
  token: { type: "string" },
  "wait-reply": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** The usage text of `send`. */
export const SEND_USAGE = `Usage: agent-relay-runner send --relay URL --to AGENT [options] TEXT

Posts a chat message to an agent through the relay and prints it as JSON.

Options:
  --relay URL            the relay (or AGENT_RELAY_URL)
  --to AGENT             the recipient
  --from ID              the sender (default "user")
  --token T              bearer token (default AGENT_RELAY_TOKEN, else "dev")
  --wait-reply SECONDS   wait this long for the reply and print it too, showing the
                         message's receipts on stderr meanwhile; a failure reply exits 1
  -h, --help             this text`;

function agentName(value: string | undefined, flag: string): string {
  if (value === undefined) throw new UsageError(`missing required flag ${flag}`);
  // deno-lint-ignore no-control-regex
  if (!value.trim() || value.length > 200 || /[\x00-\x1f]/.test(value)) {
    throw new UsageError(`${flag} "${value}" must be 1 to 200 printable characters`);
  }
  return value;
}

interface SendArgs {
  relay: string;
  to: string;
  from: string;
  token: string;
  waitSeconds: number | undefined;
  text: string;
}

function parseSendArgs(args: string[], env: Env): SendArgs | "help" {
  const { values, positionals, rest } = parseFlags(args, FLAGS, { command: "send" });
  if (values["help"] === true) return "help";
  const str = (name: string) => typeof values[name] === "string" ? values[name] : undefined;
  const relayRaw = str("relay") ?? (env["AGENT_RELAY_URL"] || undefined);
  if (relayRaw === undefined) throw new UsageError("missing required flag --relay");
  const relay = parseRelayUrl(relayRaw, str("relay") !== undefined ? "--relay" : "AGENT_RELAY_URL");
  const to = agentName(str("to"), "--to");
  const from = agentName(str("from") ?? "user", "--from");
  const token = str("token") ?? (env["AGENT_RELAY_TOKEN"] || "dev");
  if (!/^[\x21-\x7e]{1,4096}$/.test(token)) {
    throw new UsageError("the token must be printable characters without spaces");
  }
  let waitSeconds: number | undefined;
  const wait = str("wait-reply");
  if (wait !== undefined) {
    waitSeconds = Number(wait);
    if (!/^\d+(\.\d+)?$/.test(wait.trim()) || waitSeconds <= 0 || waitSeconds > 86_400) {
      throw new UsageError(`--wait-reply "${wait}" is not a number of seconds (0 to 86400)`);
    }
  }
  const text = [...positionals, ...rest].join(" ");
  if (text.trim() === "") throw new UsageError('missing the message TEXT for "send"');
  return { relay, to, from, token, waitSeconds, text };
}

function sleep(clock: Clock, ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = clock.setTimeout(done, ms);
    function done() {
      clock.clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** The error of a failure reply (`payload: {status: "failed", error}`), if it is one. */
export function failureOf(reply: Message): string | undefined {
  const payload = reply.payload;
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) return undefined;
  const p = payload as Record<string, unknown>;
  if (p["status"] !== "failed") return undefined;
  return typeof p["error"] === "string" && p["error"].trim() !== ""
    ? p["error"]
    : "the agent reported a failure without saying why";
}

/** Shows each receipt once, in the relay's order; stops asking a relay that has none. */
class ReceiptWatch {
  #seen = new Set<string>();
  #supported = true;
  constructor(
    private client: RelayHttpClient,
    private messageId: number,
    private err: (line: string) => void,
  ) {}

  async check(signal: AbortSignal | undefined): Promise<void> {
    if (!this.#supported) return;
    let receipts: Receipt[];
    try {
      receipts = await this.client.receipts(this.messageId, signal ? { signal } : {});
    } catch (error) {
      // A relay without receipts answers 404 or 405; anything else: try again next poll.
      if (error instanceof RelayError && (error.status === 404 || error.status === 405)) {
        this.#supported = false;
      }
      return;
    }
    for (const r of receipts) {
      const key = `${r.agentId}\u0000${r.state}`;
      if (this.#seen.has(key)) continue;
      this.#seen.add(key);
      this.err(escapeText(`receipt: ${r.state} (${r.agentId})${r.detail ? `: ${r.detail}` : ""}`));
    }
  }
}

/** Runs `send`; resolves with the exit code. */
export async function sendCommand(
  args: string[],
  env: Env,
  options: SendCommandOptions = {},
): Promise<number> {
  const out = options.stdout ?? lineWriter(Deno.stdout);
  const err = options.stderr ?? lineWriter(Deno.stderr);
  let parsed: SendArgs | "help";
  try {
    parsed = parseSendArgs(args, env);
  } catch (error) {
    if (error instanceof UsageError) {
      err(`send: ${error.message}`);
      return 2;
    }
    throw error;
  }
  if (parsed === "help") {
    out(SEND_USAGE);
    return 0;
  }
  const { relay, to, from, token, waitSeconds, text } = parsed;
  const clock = options.clock ?? systemClock;
  const client = new RelayHttpClient({ baseUrl: relay, token, clock });
  const call = options.signal ? { signal: options.signal } : {};

  let sent: Message;
  try {
    ({ message: sent } = await client.sendMessage({
      from,
      to,
      kind: "chat",
      body: text,
      occurredAt: clock.now(),
      idempotencyKey: `send-${crypto.randomUUID()}`,
    }, call));
  } catch (error) {
    err(`send: ${errorText(error)}`);
    return 1;
  }
  out(JSON.stringify(sent));
  if (waitSeconds === undefined) return 0;

  const deadline = clock.now() + waitSeconds * 1000;
  const watch = new ReceiptWatch(client, sent.id, err);
  let lastError: string | undefined;
  while (!options.signal?.aborted) {
    try {
      await watch.check(options.signal);
      const unread = await client.pollUnread(from, call);
      const reply = unread.find((m) => m.replyTo === sent.id && m.from === to);
      if (reply) {
        await watch.check(options.signal);
        out(JSON.stringify(reply));
        await client.markRead(reply.id, from, call).catch((error) => {
          err(`send: could not mark reply #${reply.id} read: ${errorText(error)}`);
        });
        const failure = failureOf(reply);
        if (failure === undefined) return 0;
        err(escapeText(`send: ${to} failed to answer message #${sent.id}: ${failure}`));
        return 1;
      }
    } catch (error) {
      if (error instanceof RelayError && (error.kind === "permanent" || error.kind === "auth")) {
        err(`send: ${error.message}`);
        return 1;
      }
      const message = errorText(error);
      if (message !== lastError) err(`send: still waiting; the relay failed: ${message}`);
      lastError = message;
    }
    const left = deadline - clock.now();
    if (left <= 0) break;
    await sleep(clock, Math.min(left, options.pollIntervalMs ?? 250), options.signal);
  }
  err(`send: no reply to message #${sent.id} from ${to} within ${waitSeconds}s`);
  return 1;
}
