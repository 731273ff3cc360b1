/**
 * `agent-relay-runner attach --agent-id ID [--as NAME] [--since N]`: the terminal attach,
 * without tmux. It follows the runner's `/monitor` (status changes, warnings and errors) and the
 * relay's bus as an `observer` (the agent's prompts with their sender, tool steps, replies), one
 * readable line per event; a line typed on stdin goes to the agent as a `chat` message from
 * `--as` (default `operator`), and the answer shows in the stream. Ctrl-C detaches and leaves the
 * runner running; the end of stdin does not detach (`attach </dev/null` just watches).
 * `--since N` first replays the agent's last N mirror events, read from the relay (the monitor
 * keeps no history).
 *
 * The relay is `--relay-url`, else `AGENT_RELAY_URL`, else the `relayUrl` the runner's `/status`
 * shows; its token is `AGENT_RELAY_TOKEN`, else the file `AGENT_RELAY_TOKEN_FILE`, else `dev`
 * (the reference relay's), as for `send`. Without a relay, attach shows the monitor only.
 *
 * Exit codes: 0 detached (Ctrl-C) or the runner stopped; 1 no runner running, or the monitor
 * was lost; 2 bad usage.
 *
 * @module
 */
import { type Env, parseFlags, parseRelayUrl, UsageError } from "../config/mod.ts";
import { parseMessage, RelayBus, RelayHttpClient } from "../relay/mod.ts";
import type { Message } from "../types.ts";
import { errorText, escapeText } from "../util/mod.ts";
import { AttachView, messageLine, monitorLine, type ViewLine } from "./attach_view.ts";
import {
  boundedText,
  fetchStatus,
  NoRunnerError,
  readLink,
  resolveTarget,
  type RunnerLink,
  TARGET_FLAGS,
} from "./runner_link.ts";
import { lineWriter } from "./output.ts";

/** The help text of `attach`. */
export const ATTACH_USAGE =
  `Usage: agent-relay-runner attach --agent-id ID [--as NAME] [--since N] [--relay-url URL]

Watches a running agent: its prompts (with their sender), tool steps, replies, status changes and
warnings, one line each as they happen. A line typed on stdin is sent to the agent as a chat
message from --as; its answer shows in the stream. Ctrl-C detaches: the runner keeps running.
The end of stdin does not detach ("attach </dev/null" just watches).

Options:
  --agent-id ID      the agent, as given to "run"
  --state-dir DIR    the agent's state dir (default <AGENT_RELAY_HOME or ~/.agent-relay>/state/<id>)
  --info-file PATH   the runner-info file, if "run" was given one
  --as NAME          who typed lines come from (default operator)
  --since N          first replay the agent's last N mirror events (0 to 1000, from the relay)
  --relay-url URL    the relay (or AGENT_RELAY_URL, or the relayUrl of the runner's /status);
                     the token is AGENT_RELAY_TOKEN or AGENT_RELAY_TOKEN_FILE (default "dev")
  -h, --help         this help

Colours are off when NO_COLOR is set or stdout is not a terminal.
Exit codes: 0 detached or the runner stopped; 1 no runner, or the monitor was lost; 2 bad usage.`;

const FLAGS = {
  ...TARGET_FLAGS,
  "as": { type: "string" },
  "since": { type: "string" },
  "relay-url": { type: "string" },
  "help": { type: "boolean", short: "h" },
} as const;

/** Injected in tests; defaults are the process's streams and signals. */
export interface AttachCommandOptions {
  stdout?: (line: string) => void;
  stderr?: (line: string) => void;
  /** Lines typed by the operator. Default: stdin. */
  stdin?: ReadableStream<Uint8Array>;
  /** Detaches when aborted (default: on SIGINT or SIGTERM). */
  signal?: AbortSignal;
  colour?: boolean;
}

interface AttachArgs {
  as: string;
  since: number;
  relayFlag: string | undefined;
}

function parseAttachArgs(values: Record<string, string | boolean | undefined>): AttachArgs {
  const str = (name: string) => typeof values[name] === "string" ? values[name] : undefined;
  const as = str("as") ?? "operator";
  // deno-lint-ignore no-control-regex
  if (!as.trim() || as.length > 200 || /[\x00-\x1f\x7f]/.test(as)) {
    throw new UsageError(`--as "${as}" must be 1 to 200 printable characters`);
  }
  const sinceRaw = str("since") ?? "0";
  if (!/^\d{1,4}$/.test(sinceRaw) || Number(sinceRaw) > 1000) {
    throw new UsageError(`--since "${sinceRaw}" must be a whole number from 0 to 1000`);
  }
  return { as, since: Number(sinceRaw), relayFlag: str("relay-url") };
}

async function readToken(env: Env): Promise<string> {
  if (env["AGENT_RELAY_TOKEN"]) return env["AGENT_RELAY_TOKEN"];
  const file = env["AGENT_RELAY_TOKEN_FILE"];
  if (!file) return "dev";
  try {
    const token = (await Deno.readTextFile(file)).trim();
    if (token) return token;
  } catch (error) {
    throw new NoRunnerError(`Cannot read AGENT_RELAY_TOKEN_FILE ${file}: ${errorText(error)}`);
  }
  throw new NoRunnerError(`AGENT_RELAY_TOKEN_FILE ${file} is empty`);
}

/** The last `count` mirror (`session`) messages to `agentId`, oldest first, read page by page. */
export async function recentMirror(
  relay: { url: string; token: string },
  agentId: string,
  count: number,
  options: { signal?: AbortSignal } = {},
): Promise<Message[]> {
  const kept: Message[] = [];
  let after = 0;
  for (let page = 0; page < 10_000; page++) {
    const query = new URLSearchParams({ for: agentId, limit: "1000", after: String(after) });
    const res = await fetch(`${relay.url}/api/messages?${query}`, {
      headers: { authorization: `Bearer ${relay.token}` },
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const text = await boundedText(res, 16 * 1024 * 1024);
    if (!res.ok) throw new Error(`GET /api/messages answered ${res.status}`);
    const raw = (JSON.parse(text) as { messages?: unknown })?.messages;
    const messages = Array.isArray(raw)
      ? raw.map(parseMessage).filter((m): m is Message => m !== undefined)
      : [];
    for (const message of messages) {
      if (message.kind !== "session") continue;
      kept.push(message);
      if (kept.length > count) kept.shift();
    }
    const last = messages[messages.length - 1]?.id;
    if (messages.length < 1000 || last === undefined || last <= after) break;
    after = last;
  }
  return kept;
}

/**
 * The `/monitor` WebSocket: `hello` settles once its first event came (or it closed), `ended`
 * with how it ended.
 */
function followMonitor(
  link: RunnerLink,
  onEvent: (event: Record<string, unknown>) => void,
  detach: AbortSignal,
): { hello: Promise<void>; ended: Promise<{ code: number; reason: string }> } {
  const url = `ws://127.0.0.1:${link.info.controlPort}/monitor`;
  const socket = new WebSocket(url, { headers: { authorization: `Bearer ${link.secret}` } });
  const hello = Promise.withResolvers<void>();
  const ended = new Promise<{ code: number; reason: string }>((resolve) => {
    const close = () => socket.close(1000, "detached");
    detach.addEventListener("abort", close, { once: true });
    socket.onmessage = (event) => {
      try {
        const value = JSON.parse(String(event.data));
        if (typeof value !== "object" || value === null) return;
        hello.resolve(); // the first event is the hello (or an error in its place)
        onEvent(value);
      } catch {
        // Not JSON: nothing to show.
      }
    };
    socket.onerror = () => {
      // The close event follows.
    };
    socket.onclose = (event) => {
      detach.removeEventListener("abort", close);
      hello.resolve();
      resolve({ code: event.code, reason: event.reason });
    };
  });
  return { hello: hello.promise, ended };
}

/** Lines typed on `stdin`, one call per non-empty line; returns at the end of stdin. */
async function readLines(
  stdin: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
  detach: AbortSignal,
): Promise<void> {
  let rest = "";
  const reader = stdin.pipeThrough(new TextDecoderStream()).getReader();
  const stop = () => void reader.cancel().catch(() => {});
  detach.addEventListener("abort", stop, { once: true });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += value;
      let nl: number;
      while ((nl = rest.indexOf("\n")) !== -1) {
        const line = rest.slice(0, nl).replace(/\r$/, "");
        rest = rest.slice(nl + 1);
        if (line.trim() !== "") onLine(line);
      }
    }
    if (rest.trim() !== "") onLine(rest);
  } catch {
    // stdin closed under us: keep watching.
  } finally {
    detach.removeEventListener("abort", stop);
  }
}

function detachSignal(given: AbortSignal | undefined): { signal: AbortSignal; dispose(): void } {
  if (given) return { signal: given, dispose: () => {} };
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  for (const s of signals) Deno.addSignalListener(s, onSignal);
  return {
    signal: controller.signal,
    dispose: () => signals.forEach((s) => Deno.removeSignalListener(s, onSignal)),
  };
}

/** Runs `attach`; resolves with the exit code. */
export async function attachCommand(
  args: string[],
  env: Env,
  options: AttachCommandOptions = {},
): Promise<number> {
  const out = options.stdout ?? lineWriter(Deno.stdout);
  const err = options.stderr ?? lineWriter(Deno.stderr);
  const { values, positionals } = parseFlags(args, FLAGS, { command: "attach" });
  if (values["help"] === true) {
    out(ATTACH_USAGE);
    return 0;
  }
  if (positionals.length > 0) {
    throw new UsageError(
      `unexpected argument "${positionals[0]}" for "attach" (type lines on stdin)`,
    );
  }
  const target = resolveTarget(values, env);
  const parsed = parseAttachArgs(values);
  const relayEnv = env["AGENT_RELAY_URL"] || undefined;
  if (parsed.relayFlag !== undefined) parseRelayUrl(parsed.relayFlag, "--relay-url");
  else if (relayEnv !== undefined) parseRelayUrl(relayEnv, "AGENT_RELAY_URL");

  let link: RunnerLink;
  let status: Record<string, unknown>;
  let token: string;
  try {
    link = await readLink(target);
    status = await fetchStatus(link);
    token = await readToken(env);
  } catch (error) {
    err(`agent-relay-runner: ${escapeText(errorText(error))}`);
    return 1;
  }
  const agentId = String(link.info.agentId);
  const shownRelay = typeof status["relayUrl"] === "string" ? status["relayUrl"] : undefined;
  let relayUrl: string | undefined;
  try {
    relayUrl = parsed.relayFlag !== undefined
      ? parseRelayUrl(parsed.relayFlag, "--relay-url")
      : relayEnv !== undefined
      ? parseRelayUrl(relayEnv, "AGENT_RELAY_URL")
      : shownRelay !== undefined
      ? parseRelayUrl(shownRelay, "the runner's relayUrl")
      : undefined;
  } catch (error) {
    err(`agent-relay-runner: ${escapeText(errorText(error))}`);
    return 1;
  }

  const view = new AttachView({
    colour: options.colour ?? (!Deno.noColor && Deno.stdout.isTerminal()),
  });
  const show = (line: ViewLine | undefined) => line && out(view.render(line));
  const note = (text: string, kind: ViewLine["kind"] = "info") =>
    show({ at: Date.now(), kind, text });
  const { signal: detach, dispose } = detachSignal(options.signal);
  const seen = new Set<number>();
  /** Lines typed here and on their way: the bus may push them back before the send returns. */
  const sending = new Set<string>();
  const onRelayMessage = (message: Message) => {
    if (seen.has(message.id)) return;
    seen.add(message.id);
    if (message.from === parsed.as && message.to === agentId && sending.has(message.body)) return;
    show(messageLine(message, agentId));
  };

  let bus: RelayBus | undefined;
  let client: RelayHttpClient | undefined;
  if (relayUrl !== undefined) {
    const relay = { url: relayUrl, token };
    client = new RelayHttpClient({ baseUrl: relayUrl, token });
    if (parsed.since > 0) {
      try {
        const recent = await recentMirror(relay, agentId, parsed.since, { signal: detach });
        if (recent.length === 0) note("no mirror events on the relay yet");
        for (const message of recent) onRelayMessage(message);
      } catch (error) {
        note(`could not replay the last ${parsed.since} events: ${errorText(error)}`, "warn");
      }
    }
    let warned = false;
    bus = new RelayBus({
      baseUrl: relayUrl,
      agentId: parsed.as,
      role: "observer",
      token: () => token,
      onMessage: (message) => {
        onRelayMessage(message);
        if (message.from === agentId && message.to === parsed.as && message.kind === "chat") {
          client?.markRead(message.id, parsed.as).catch(() => {});
        }
      },
      onStateChange: (state) => {
        if (state === "open") warned = false;
        if (state === "connecting" && !warned && bus?.attempts) {
          warned = true;
          note("the relay's bus is not connected: retrying", "warn");
        }
      },
      onFatal: (code, message) => note(`the relay closed the bus: ${code} ${message}`, "warn"),
    });
    bus.start();
    // Nothing said to or by the agent from now on is missed: the observer is on the bus first.
    const connected = AbortSignal.any([detach, AbortSignal.timeout(5_000)]);
    await bus.whenConnected({ signal: connected }).catch(() => {
      if (!detach.aborted) note("the relay's bus is not connected yet: retrying", "warn");
    });
  }
  // The runner's monitor is open before "attached" is shown and a typed line can go out, so
  // what the agent does with the first line is seen (its hello comes first).
  const monitor = followMonitor(link, (event) => {
    if (event["type"] === "hello") return;
    show(monitorLine(event, Date.now()));
  }, detach);
  await monitor.hello;
  note(
    `attached to ${agentId} (${String(status["provider"] ?? link.info.provider)}), status ${
      String(status["status"])
    }; ${
      relayUrl
        ? `lines you type go to it from ${parsed.as}`
        : "no relay URL (--relay-url or AGENT_RELAY_URL): watching the runner only"
    }; Ctrl-C detaches`,
  );

  const send = async (line: string) => {
    if (!client) {
      note("not sent: attach has no relay URL (--relay-url or AGENT_RELAY_URL)", "warn");
      return;
    }
    sending.add(line);
    try {
      const { message } = await client.sendMessage({
        from: parsed.as,
        to: agentId,
        kind: "chat",
        body: line,
        occurredAt: Date.now(),
        idempotencyKey: `attach-${crypto.randomUUID()}`,
      }, { signal: detach });
      seen.add(message.id);
      show({
        at: Date.now(),
        kind: "you",
        text: `${parsed.as} \u2192 ${agentId} #${message.id}: ${line}`,
      });
    } catch (error) {
      if (!detach.aborted) note(`not sent: ${errorText(error)}`, "error");
    } finally {
      sending.delete(line);
    }
  };
  void readLines(options.stdin ?? Deno.stdin.readable, (line) => void send(line), detach);

  const ended = await monitor.ended;
  bus?.close();
  dispose();
  if (detach.aborted) {
    err(`detached from ${agentId}; the runner keeps running`);
    return 0;
  }
  if (ended.code === 1001) {
    err(`the runner of ${agentId} stopped (${escapeText(ended.reason)}); detached`);
    return 0;
  }
  err(
    `agent-relay-runner: lost the runner's monitor (close code ${ended.code}${
      ended.reason ? `: ${escapeText(ended.reason)}` : ""
    })`,
  );
  return 1;
}
