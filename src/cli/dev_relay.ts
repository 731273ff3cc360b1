/**
 * `agent-relay-runner dev-relay [--port 8787] [--db FILE] [--token T] [--permission allow|deny]`:
 * runs the reference relay on 127.0.0.1 until SIGINT or SIGTERM, printing its URL on stdout
 * and one readable line per request on stderr, every control character escapeText-escaped.
 *
 * @module
 */
import { type Env, parseFlags, parsePort, UsageError } from "../config/mod.ts";
import { type DevRelay, startDevRelay } from "../dev_relay/mod.ts";
import { errorText, escapeText } from "../util/mod.ts";
import { lineWriter } from "./output.ts";

/** Options of {@linkcode devRelayCommand} (tests). */
export interface DevRelayCommandOptions {
  /** Stops the relay like a signal would. */
  signal?: AbortSignal;
  /** Where stdout lines go. Default: stdout. */
  stdout?: (line: string) => void;
  /** Where stderr lines go. Default: stderr. */
  stderr?: (line: string) => void;
  /** Called once the relay listens. */
  onListen?: (relay: DevRelay) => void;
}

const FLAGS = {
  port: { type: "string" },
  db: { type: "string" },
  token: { type: "string" },
  permission: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** The usage text of `dev-relay`. */
export const DEV_RELAY_USAGE = `Usage: agent-relay-runner dev-relay [options]

Runs the reference relay on 127.0.0.1 (HTTP API, WebSocket bus, admin API).

Options:
  --port N               port on 127.0.0.1 (default 8787; 0 = any free port)
  --db FILE              SQLite file to keep state in (default: in memory)
  --token T              the bearer token clients must send (default "dev")
  --permission allow|deny  how permission requests are answered (default deny)
  -h, --help             this text`;

/** Runs `dev-relay`; resolves with the exit code (0 stopped by a signal, 1 failed, 2 usage). */
export async function devRelayCommand(
  args: string[],
  _env: Env,
  options: DevRelayCommandOptions = {},
): Promise<number> {
  const out = options.stdout ?? lineWriter(Deno.stdout);
  const rawErr = options.stderr ?? lineWriter(Deno.stderr);
  // Everything on stderr is one line with no control character raw (a request's path, an
  // agent id or a file name could carry a terminal escape).
  const err = (line: string) => rawErr(escapeText(line));
  let port: number;
  let token: string;
  let dbPath: string | undefined;
  let permission: "allow" | "deny";
  try {
    const { values, positionals, rest } = parseFlags(args, FLAGS, { command: "dev-relay" });
    if (values["help"] === true) {
      out(DEV_RELAY_USAGE);
      return 0;
    }
    if (positionals.length > 0 || rest.length > 0) {
      throw new UsageError(`unexpected argument "${positionals[0] ?? rest[0]}" for "dev-relay"`);
    }
    const str = (name: string) => typeof values[name] === "string" ? values[name] : undefined;
    port = parsePort(str("port") ?? "8787", "--port");
    token = str("token") ?? "dev";
    if (!/^[\x21-\x7e]{1,512}$/.test(token)) {
      throw new UsageError("--token must be 1 to 512 printable characters without spaces");
    }
    dbPath = str("db");
    if (dbPath !== undefined && dbPath.trim() === "") {
      throw new UsageError("--db needs a file name");
    }
    const p = str("permission") ?? "deny";
    if (p !== "allow" && p !== "deny") {
      throw new UsageError(`--permission "${p}" is not one of: allow, deny`);
    }
    permission = p;
  } catch (error) {
    if (error instanceof UsageError) {
      err(`dev-relay: ${error.message}`);
      return 2;
    }
    throw error;
  }

  let relay: DevRelay;
  try {
    relay = await startDevRelay({
      port,
      ...(dbPath !== undefined ? { dbPath } : {}),
      token,
      permission: {
        decision: permission,
        reason: permission === "allow"
          ? "the dev relay allows every tool (--permission allow)"
          : "the dev relay denies every tool (--permission deny)",
      },
      trace: (line) => err(`[${new Date().toISOString()}] ${line}`),
    });
  } catch (error) {
    const message = errorText(error);
    err(`dev-relay: cannot start on 127.0.0.1:${port}: ${message}`);
    return 1;
  }

  const stop = Promise.withResolvers<string>();
  const onSignal = (name: string) => () => stop.resolve(name);
  const handlers: Array<[Deno.Signal, () => void]> = [
    ["SIGINT", onSignal("SIGINT")],
    ["SIGTERM", onSignal("SIGTERM")],
  ];
  for (const [signal, handler] of handlers) Deno.addSignalListener(signal, handler);
  const onAbort = () => stop.resolve("abort");
  if (options.signal?.aborted) stop.resolve("abort");
  options.signal?.addEventListener("abort", onAbort, { once: true });

  err(
    `dev-relay listening on ${relay.url} (db: ${dbPath ?? "in memory"}; ` +
      `token: ${token === "dev" ? "the default" : "from --token"}; permission: ${permission})`,
  );
  out(relay.url);
  options.onListen?.(relay);

  const why = await stop.promise;
  for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
  options.signal?.removeEventListener("abort", onAbort);
  err(`dev-relay stopping (${why})`);
  await relay.close();
  return 0;
}
