/**
 * `deno task demo`: the reference relay and a runner with the echo agent, one message's round
 * trip printed, then both stay up until Ctrl-C so you can look around.
 *
 * The runner runs as `deno task start` runs it: under the sandbox of deno.json. Its dirs live in
 * a temp base dir (printed), removed at exit unless `--keep` is given.
 *
 * Usage: `deno task demo [--port N] [--keep]` (`--help` prints it; a bad flag exits 2 with one
 * line).
 *
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startDevRelay } from "../src/dev_relay/mod.ts";
import type { Message } from "../src/types.ts";
import { APP_DIR, sandboxedRunArgs } from "./sandbox.ts";

// deno-lint-ignore no-console
const say = (line = "") => console.log(line);

const USAGE = `Usage: deno task demo [--port N] [--keep]

Starts the reference relay and a runner with the echo agent (under the runner's sandbox), sends
one message and prints its round trip (message → relay → runner → agent → reply → relay), then
how to watch the runner (status, attach, /metrics, the log). Both stay up until Ctrl-C.

Options:
  --port N     the reference relay's port on 127.0.0.1 (default 0: any free port)
  --keep       keep the demo's temp base dir (logs, state, outbox) after it stops; its path is
               printed (by default it is removed at exit)
  -h, --help   this help`;

function parseDemoArgs(): { port: number; keep: boolean } {
  let values: { port?: string; keep?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        port: { type: "string", default: "0" },
        keep: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (error) {
    // deno-lint-ignore no-console
    console.error(
      `demo: ${(error instanceof Error ? error.message : String(error)).split("\n")[0]}`,
    );
    Deno.exit(2);
  }
  if (values.help) {
    say(USAGE);
    Deno.exit(0);
  }
  const port = Number(values.port);
  if (!/^\d{1,5}$/.test(values.port ?? "") || port > 65535) {
    // deno-lint-ignore no-console
    console.error(`demo: --port "${values.port}" is not a port number (0 to 65535)`);
    Deno.exit(2);
  }
  return { port, keep: values.keep === true };
}

const values = parseDemoArgs();
const relay = await startDevRelay({ port: values.port, permission: { decision: "allow" } });
const home = await Deno.makeTempDir({ prefix: "agent-relay-demo-" });
const agentId = "echo";
const echo = join(APP_DIR, "examples", "echo-agent");
const args = [
  "run",
  "--agent-id",
  agentId,
  "--relay-url",
  relay.url,
  "--provider",
  "command",
  "--",
  echo,
];
const env = { ...Deno.env.toObject(), AGENT_RELAY_HOME: home, AGENT_RELAY_TOKEN: relay.token };
const runner = new Deno.Command(Deno.execPath(), {
  args: sandboxedRunArgs(join(APP_DIR, "main.ts"), args, env),
  env,
  stdin: "null",
  stdout: "inherit",
  stderr: "inherit",
}).spawn();

const stateDir = join(home, "state", agentId);
const infoFile = join(stateDir, "runner-info.json");

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  ms = 20_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Stops both (the runner first, gracefully) and exits with `code`. */
async function shutdown(code: number): Promise<never> {
  try {
    runner.kill("SIGTERM");
  } catch {
    // Already gone.
  }
  await finish();
  Deno.exit(code);
}

async function finish(): Promise<number> {
  const status = await runner.status;
  await relay.close();
  if (!values.keep) await Deno.remove(home, { recursive: true }).catch(() => {});
  say(`runner exited with code ${status.code}; relay closed.`);
  if (values.keep) say(`kept ${home} (--keep)`);
  return status.code;
}

try {
  say(`reference relay  ${relay.url}  (token "${relay.token}")`);
  const info = await until("the runner-info file", async () => {
    const text = await Deno.readTextFile(infoFile);
    return JSON.parse(text) as { controlPort: number; pid: number; logFile: string };
  });
  say(`runner           pid ${info.pid}, control server http://127.0.0.1:${info.controlPort}`);
  await until(
    "the agent on the bus",
    () =>
      Promise.resolve(relay.admin.connections().some((c) => c.agentId === agentId) || undefined),
  );

  const text = "hello from the demo";
  const res = await fetch(`${relay.url}/api/messages`, {
    method: "POST",
    headers: { authorization: `Bearer ${relay.token}`, "content-type": "application/json" },
    body: JSON.stringify({ from: "user", to: agentId, kind: "chat", body: text }),
  });
  const sent = ((await res.json()) as { message: Message }).message;
  const t0 = performance.now();
  say();
  say(`1. user → relay     message #${sent.id} to ${agentId}: "${text}"`);
  const reply = await until("the reply", () =>
    Promise.resolve(
      relay.admin.state().messages.find((m) => m.kind === "chat" && m.replyTo === sent.id),
    ));
  const prompt = relay.admin.state().messages.find((m) => m.kind === "session" && m.body === text);
  say(`2. relay → runner   pushed on the bus, handed to the echo agent's stdin`);
  if (prompt) say(`   (mirrored as session message #${prompt.id})`);
  say(`3. agent → runner   {"type":"response","text":"${reply.body}","replyTo":${sent.id}}`);
  say(`4. runner → relay   reply #${reply.id} ${reply.from} → ${reply.to}: "${reply.body}"`);
  say(`   round trip ${(performance.now() - t0).toFixed(0)} ms, through the durable outbox`);
  say();
  say("Watch it:");
  say(`  AGENT_RELAY_HOME=${home} deno task start status --agent-id ${agentId}`);
  say(
    `  AGENT_RELAY_HOME=${home} AGENT_RELAY_URL=${relay.url} deno task start attach --agent-id ${agentId}`,
  );
  const auth = `-H "Authorization: Bearer $(cat ${join(stateDir, "control-secret")})"`;
  say(`  curl -s ${auth} http://127.0.0.1:${info.controlPort}/status`);
  say(`  curl -s ${auth} http://127.0.0.1:${info.controlPort}/metrics`);
  say(`  /monitor: a WebSocket at ws://127.0.0.1:${info.controlPort}/monitor (same header)`);
  say(`  tail -f ${info.logFile}`);
  say(`  deno task start send --relay ${relay.url} --to ${agentId} --wait-reply 5 "hi again"`);
  say();
  say("Ctrl-C to stop.");
} catch (error) {
  say(`demo failed: ${error instanceof Error ? error.message : error}`);
  await shutdown(1);
}

// Ctrl-C in a terminal reaches the runner too (same process group): it stops gracefully, and
// `finish` follows. A SIGTERM for the demo alone is passed on.
Deno.addSignalListener("SIGINT", () => {});
Deno.addSignalListener("SIGTERM", () => void shutdown(0));
Deno.exit(await finish());
