/**
 * The long, seeded versions of the round-2 attacks for `deno task fuzz round2` (issue 16):
 *
 * - {@linkcode fuzzLogForging}: random strings built from every hostile character (and plain
 *   text) into every path that logs relay- or provider-supplied text, on a real runner at debug
 *   level: message bodies and a command agent's stderr (it prints each line it gets), bus
 *   frames that are not JSON, bus `error` frames, unknown frame types, malformed bus messages,
 *   and `/hook-fatal` reports. The log, stdout and stderr must hold no raw control character.
 * - {@linkcode fuzzControlMethods}: random method names (tokens, `Object` member names, case
 *   variants) on random routes of a real runner's control server, with and without the secret,
 *   some of them half-sent and dropped: never a 5xx, never a dead server, `/health` answering
 *   throughout, and the runner stopping with exit 0 at the end.
 *
 * Each is bounded in count and time and talks to 127.0.0.1 only.
 *
 * @module
 */
import { withHome } from "../../support/home.ts";
import { startRunner } from "../../support/runner_process.ts";
import { waitFor } from "../../support/wait.ts";
import { rawMessage, startFakeRelay } from "./fake_relay.ts";
import { mulberry32, type Rng } from "./prng.ts";
import {
  HOSTILE_CHARS,
  OBJECT_MEMBER_METHODS,
  rawControls,
  rawRequest,
  ROUTES,
  withFakeClaude,
} from "./round2.ts";

/** What a round-2 fuzz run found. */
export interface Round2Result {
  cases: number;
  failures: string[];
  elapsedMs: number;
  /** Status counts (control methods) or paths exercised (log forging). */
  counts: Record<string, number>;
}

/** A random string of hostile characters, plain text and forged-line starts. */
export function hostileString(rng: Rng, maxLength = 40): string {
  const parts = [
    ...HOSTILE_CHARS,
    "\r",
    "\n",
    "\t",
    "\u001b[2J",
    "\u001b]0;title\u0007",
    "[2026-01-01T00:00:00.000Z] FATAL [runner] forged",
    "plain",
    " ",
    "\u00e9",
    "\u{1f600}",
  ];
  let text = "";
  const n = rng.int(1, maxLength);
  for (let i = 0; i < n; i++) text += rng.pick(parts);
  return text;
}

/** Options of the round-2 fuzzers. */
export interface Round2Options {
  seed: number;
  count: number;
  /** Give up (as a failure) after this long. Default 120 s. */
  timeoutMs?: number;
}

/** Random hostile strings into every logged path of a real runner (see the module doc). */
export async function fuzzLogForging(options: Round2Options): Promise<Round2Result> {
  const rng = mulberry32(options.seed);
  const started = performance.now();
  const failures: string[] = [];
  const counts: Record<string, number> = {};
  const count = (what: string) => void (counts[what] = (counts[what] ?? 0) + 1);
  await withHome("arr-fuzz2-", async (home) => {
    const relay = startFakeRelay();
    try {
      // The agent prints every line it gets on stderr, then answers it.
      const agent = [
        "bash",
        "-c",
        `while IFS= read -r line; do
  printf '%s\\n' "$line" >&2
  id=\${line#*\\"id\\":}; id=\${id%%,*}
  printf '{"type":"response","text":"ok","replyTo":%s}\\n' "$id"
done`,
      ];
      const runner = startRunner(relay, {
        agentId: "fuzzed",
        home,
        cwd: home,
        providerArgs: agent,
      });
      const { port, secret } = await runner.control();
      await waitFor("the bus connection", () => relay.busSockets() > 0, { signal: runner.exited });
      const signal = AbortSignal.any([
        runner.exited,
        AbortSignal.timeout(options.timeoutMs ?? 120_000),
      ]);
      let i = 0;
      try {
        for (; i < options.count; i++) {
          const text = hostileString(rng);
          const path = rng.int(0, 5);
          if (path === 0) {
            const id = 10_000 + i;
            relay.push({
              type: "message.new",
              message: rawMessage(id, { to: "fuzzed", from: `peer${i}`, body: text }),
            });
            await waitFor(`the answer to #${id}`, () => relay.repliesTo(id).length > 0, { signal });
            count("message body and agent stderr");
          } else if (path === 1) {
            relay.push(`not json ${text}`);
            count("bus frame not JSON");
          } else if (path === 2) {
            relay.push({ type: "error", code: text, message: text });
            count("bus error frame");
          } else if (path === 3) {
            relay.push({ type: text });
            relay.push({ type: "message.new", message: { id: text, body: text } });
            count("bus frame type and malformed message");
          } else {
            const res = await fetch(`http://127.0.0.1:${port}/hook-fatal`, {
              method: "POST",
              headers: { authorization: `Bearer ${secret}`, "content-type": "application/json" },
              body: JSON.stringify({ hook: text, error: text }),
              signal,
            });
            await res.body?.cancel();
            count("hook-fatal report");
          }
        }
        // A last message on the same socket: once answered, every frame before it was handled.
        relay.push({ type: "message.new", message: rawMessage(99_999, { to: "fuzzed" }) });
        await waitFor("the last answer", () => relay.repliesTo(99_999).length > 0, { signal });
        await runner.drained();
      } catch (error) {
        const tail = (await runner.log()).split("\n").slice(-12).join("\n      ");
        failures.push(`case ${i} (seed ${options.seed}): ${error}\n      ${tail}`);
      }
      const code = await runner.stop();
      if (code !== 0) failures.push(`the runner exited with ${code}`);
      const { stdout, stderr } = await runner.output;
      for (
        const [what, text] of [["log", await runner.log()], ["stdout", stdout], ["stderr", stderr]]
      ) {
        for (const raw of rawControls(text!).slice(0, 10)) failures.push(`${what} ${raw}`);
      }
    } finally {
      await relay.close();
    }
  });
  return { cases: options.count, failures, elapsedMs: performance.now() - started, counts };
}

const TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/** Random method names and half-sent requests at a real runner's control server. */
export async function fuzzControlMethods(options: Round2Options): Promise<Round2Result> {
  const rng = mulberry32(options.seed);
  const started = performance.now();
  const failures: string[] = [];
  const counts: Record<string, number> = {};
  await withFakeClaude("arr-fuzz2-", async ({ start }) => {
    const runner = start({ agentId: "fuzzed", logLevel: "info" });
    const { port, secret } = await runner.control();
    const deadline = performance.now() + (options.timeoutMs ?? 120_000);
    for (let i = 0; i < options.count && performance.now() < deadline; i++) {
      const member = rng.pick(OBJECT_MEMBER_METHODS);
      const method = rng.pick([
        member,
        member.toUpperCase(),
        rng.string(rng.int(1, 24), TCHARS),
        rng.pick(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "get", "post"]),
      ]);
      const path = rng.chance(0.8) ? rng.pick(ROUTES) : `/${rng.pick(OBJECT_MEMBER_METHODS)}`;
      const authed = rng.chance(0.6);
      if (rng.chance(0.1)) {
        // Half-sent, then dropped.
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        const head = `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
          (authed ? `Authorization: Bearer ${secret}\r\n` : "") +
          (rng.chance(0.5) ? "Content-Length: 100\r\n\r\n{" : "X-Half: y");
        await conn.write(new TextEncoder().encode(head));
        conn.close();
        counts["half-sent"] = (counts["half-sent"] ?? 0) + 1;
        continue;
      }
      const res = await rawRequest(port, method, path, authed ? secret : undefined);
      counts[String(res.status)] = (counts[String(res.status)] ?? 0) + 1;
      if (res.status === 0 || res.status >= 500) {
        failures.push(`case ${i}: ${method} ${path} (secret: ${authed}) answered ${res.status}`);
      }
      if (i % 100 === 0) {
        const health = await fetch(`http://127.0.0.1:${port}/health`).catch(() => undefined);
        if (health?.status !== 200) {
          failures.push(`case ${i}: /health answered ${health?.status}`);
        }
        await health?.body?.cancel();
      }
    }
    const code = await runner.stop();
    if (code !== 0) failures.push(`the runner exited with ${code}`);
    const log = await runner.log();
    if (/\bERROR\b/.test(log)) failures.push("the runner logged an ERROR");
  });
  return { cases: options.count, failures, elapsedMs: performance.now() - started, counts };
}
