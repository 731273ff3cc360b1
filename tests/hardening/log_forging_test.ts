/**
 * Round 2 (issue 16), log forging through the real program (`main.ts run` under its sandbox at
 * debug level): every path that writes relay- or provider-supplied text into the text log gets
 * NUL, BEL, BS, VT, FF, ESC sequences, DEL, C1 controls (NEL, CSI), U+2028/9 and the bidi
 * overrides and isolates, and the log file must hold none of them raw (grep would call it
 * binary after one NUL; NEL and LS start forged lines).
 *
 * The paths: a relay error body (an unread poll answering 500), a relay bus `error` frame and a
 * frame that is not JSON, message bodies and a sender name (debug level), a command agent's
 * stderr and its turn error, Claude's stderr, and hook payload fields sent by the real bash hooks
 * (tool names, commands, notification text, a transcript path, a hook-fatal report).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { bashAgent } from "../support/agents.ts";
import { withHome } from "../support/home.ts";
import { startRunner } from "../support/runner_process.ts";
import { waitFor } from "../support/wait.ts";
import { rawMessage, startFakeRelay } from "./support/fake_relay.ts";
import { fakeClaude, hookEnv, HOSTILE_CHARS, rawControls, runHook } from "./support/round2.ts";

/** Every hostile character, with a forged log line after a NEL and a terminal title sequence. */
const HOSTILE = `x${HOSTILE_CHARS.join("")}\u0085[2026-01-01T00:00:00.000Z] FATAL [runner] forged` +
  `\u001b]0;pwned\u0007\u001b[2J`;

/** The same bytes as a bash `printf` format (raw bytes out, NUL included). */
const HOSTILE_PRINTF = [...HOSTILE].map((c) =>
  [...new TextEncoder().encode(c)].map((b) =>
    b < 0x20 || b >= 0x7f || c === "%" || c === "\\" || c === "'"
      ? `\\x${b.toString(16).padStart(2, "0")}`
      : c
  ).join("")
).join("");

function assertClean(what: string, text: string): void {
  const raw = rawControls(text);
  assert.deepEqual(raw, [], `${what} holds raw control characters:\n${raw.join("\n")}`);
}

Deno.test("log forging: relay error bodies, bus frames, message bodies and a command agent's stderr reach the log escaped", async () => {
  await withHome("arr-forge-", async (home) => {
    let polls = 0;
    const relay = startFakeRelay({
      override: (req, url) => {
        if (req.method === "GET" && url.pathname === "/api/messages" && polls++ === 0) {
          return new Response(`relay broke: ${HOSTILE}`, { status: 500 });
        }
        return undefined;
      },
    });
    relay.addUnread(rawMessage(1, { to: "forger", body: HOSTILE }));
    relay.addUnread(
      rawMessage(2, { to: "forger", from: `bob${HOSTILE}`, body: "from a bad name" }),
    );
    try {
      const agent = bashAgent(`
printf '${HOSTILE_PRINTF} agent stderr %s\\n' "$id" >&2
if [ "$id" = 1 ]; then
  echo '{"type":"status","status":"busy"}'
  printf '%s\\n' '{"type":"status","status":"error","error":${JSON.stringify(HOSTILE)}}'
else
  reply "done"
fi`);
      const runner = startRunner(relay, {
        agentId: "forger",
        home,
        cwd: home,
        providerArgs: agent,
        extraArgs: ["--turn-retries", "0"],
      });
      await waitFor("the failure reply to #1", () => relay.repliesTo(1).length > 0, {
        signal: runner.exited,
      });
      await waitFor("the bus connection", () => relay.busSockets() > 0, { signal: runner.exited });
      relay.push({ type: "error", code: `odd${HOSTILE}`, message: `bus says ${HOSTILE}` });
      relay.push(`not json ${HOSTILE}`);
      relay.push({ type: `kind${HOSTILE}` });
      relay.push({ type: "message.new", message: { id: HOSTILE, body: HOSTILE } });
      relay.push({ type: "message.new", message: rawMessage(3, { to: "forger", body: HOSTILE }) });
      await waitFor(
        "the answer to #3 (after the bus frames)",
        () => relay.repliesTo(3).length > 0,
        {
          signal: runner.exited,
        },
      );
      await runner.drained();
      assert.equal(await runner.stop(), 0);
      const log = await runner.log();
      assertClean("the log file", log);
      const { stdout, stderr } = await runner.output;
      assertClean("the runner's stdout", stdout);
      assertClean("the runner's stderr", stderr);
      // Each path did write its text (escaped), so the check above is not vacuous.
      const escaped = String.raw`\u{1b}]0;pwned\u{7}\u{1b}[2J`;
      for (
        const [what, pattern] of [
          ["the relay's error body", /relay broke: x\\u\{0\}/],
          ["the agent's stderr", /stderr: x\\u\{0\}\\u\{7\}\\u\{8\}\\u\{b\}\\u\{c\}/],
          ["the bus error frame", /bus says x\\u\{0\}/],
          ["the bus frame that is not JSON", /not JSON: not json x\\u\{0\}/],
          ["NEL", /\\u\{85\}\[2026-01-01T00:00:00\.000Z\] FATAL \[runner\] forged/],
        ] as const
      ) {
        assert.match(log, pattern, what);
      }
      assert.ok(log.includes(escaped), "the title and clear-screen sequences, escaped");
      assert.ok(
        !log.split("\n").some((l) => l.startsWith("[2026-01-01T00:00:00.000Z]")),
        "no forged line",
      );
    } finally {
      await relay.close();
    }
  });
});

Deno.test("log forging: Claude's stderr and every hook payload field (real bash hooks) reach the log escaped", async () => {
  await withHome("arr-forge-", async (home) => {
    const relay = startFakeRelay();
    try {
      const env = await fakeClaude(home);
      // The stand-in prints the hostile bytes on stderr before it starts.
      const bin = env["AGENT_RELAY_CLAUDE_BIN"]!;
      const script = await Deno.readTextFile(bin);
      await Deno.writeTextFile(
        bin,
        script.replace("exec ", `printf '${HOSTILE_PRINTF} claude stderr\\n' >&2\nexec `),
      );
      const runner = startRunner(relay, {
        agentId: "forger",
        home,
        cwd: home,
        provider: "claude",
        env,
      });
      await runner.info();
      const hooks = await hookEnv(runner);
      const h = HOSTILE;
      const payloads: Array<[string, unknown]> = [
        ["session-start", { session_id: h, transcript_path: join(home, `t${h}.jsonl`), source: h }],
        ["user-prompt-submit", { prompt: h, session_id: h }],
        ["pre-tool-use", { tool_name: h, tool_input: { command: h }, session_id: h }],
        ["post-tool-use", { tool_name: h, tool_input: { command: h }, tool_response: h }],
        ["notification", { message: h, title: h }],
        ["permission-request", { tool_name: h, tool_input: { command: h } }],
        ["subagent-start", { agent_type: h }],
        ["subagent-stop", { agent_type: h }],
        ["pre-compact", { trigger: h, custom_instructions: h }],
        ["post-compact", { trigger: h }],
        ["stop-failure", { error: h, reason: h }],
        ["stop", { last_assistant_message: h, stop_hook_active: false }],
        ["session-end", { reason: h, transcript_path: join(home, `gone${h}.jsonl`) }],
      ];
      for (const [event, payload] of payloads) {
        const run = await runHook(event, JSON.stringify(payload), hooks);
        assert.equal(run.code, 0, `${event}: ${run.stderr}`);
      }
      // Not JSON at all, and a hook-fatal report with hostile fields.
      await runHook("notification", `not json ${h}`, hooks);
      const { port, secret } = await runner.control();
      const fatal = await fetch(`http://127.0.0.1:${port}/hook-fatal`, {
        method: "POST",
        headers: { authorization: `Bearer ${secret}`, "content-type": "application/json" },
        body: JSON.stringify({ hook: `h${h}`, error: `broke ${h}` }),
      });
      assert.equal(fatal.status, 200, await fatal.text());
      await waitFor(
        "the session-end transcript read to be logged",
        async () => /reading the transcript .* failed/.test(await runner.log()),
        { signal: runner.exited },
      );
      assert.equal(await runner.stop(), 0);
      const log = await runner.log();
      assertClean("the log file", log);
      const { stdout, stderr } = await runner.output;
      assertClean("the runner's stdout", stdout);
      assertClean("the runner's stderr", stderr);
      assert.match(log, /claude: x\\u\{0\}\\u\{7\}/, "Claude's stderr, escaped");
      assert.match(log, /FATAL .*hx\\u\{0\}/, "the hook-fatal report, escaped");
      assert.match(log, /reading the transcript .*gonex\\u\{0\}/, "the transcript path, escaped");
      assert.ok(
        !log.split("\n").some((l) => l.startsWith("[2026-01-01T00:00:00.000Z]")),
        "no forged line",
      );
    } finally {
      await relay.close();
    }
  });
});
