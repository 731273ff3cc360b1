/**
 * End to end with the real Codex CLI: the reference relay in this process (on 127.0.0.1), the
 * runner as a child process under its sandbox (`main.ts run --provider codex`), and Codex in a
 * loopback-only network namespace (tests/support/codex_sandbox.ts) talking to the mock Responses
 * API, which this process serves on a unix socket.
 *
 * Skipped, with a printed reason, only when the CLI is not installed
 * (`bash scripts/install_providers.sh codex`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type DevRelay, startDevRelay } from "../../src/dev_relay/mod.ts";
import type { Message, PermissionPolicy } from "../../src/types.ts";
import { type CodexRunner, nativeCodexPid, startCodexRunner } from "../support/codex_e2e.ts";
import {
  type CodexSandbox,
  codexUnavailableReason,
  createCodexSandbox,
} from "../support/codex_sandbox.ts";
import { userTexts } from "../support/mock_openai.ts";
import { cmdline, descendants } from "../support/process_tree.ts";
import { markedRead, mirrorEntries, Poster, repliesTo } from "../support/relay_messages.ts";
import { waitFor } from "../support/wait.ts";

const unavailable = codexUnavailableReason();
if (unavailable) {
  // deno-lint-ignore no-console
  console.log(`runner_codex_e2e_test: skipping: ${unavailable}`);
}

const AGENT = "codex-e2e";

interface World {
  relay: DevRelay;
  sandbox: CodexSandbox;
  runner: CodexRunner;
  send(body: string, from?: string): Promise<Message>;
  messages(): Message[];
  /** {@linkcode waitFor} that gives up at once when the runner exits. */
  waitFor<T>(
    what: string,
    probe: () => T | undefined | false | Promise<T | undefined | false>,
    options?: { timeoutMs?: number },
  ): Promise<T>;
}

/** Runs `body` with a relay, a Codex sandbox and a runner on them; stops and removes them all. */
async function withRunner(
  options: { permissionPolicy?: PermissionPolicy; providerArgs?: string[] },
  body: (w: World) => Promise<void>,
): Promise<void> {
  const relay = await startDevRelay({ port: 0 });
  const sandbox = await createCodexSandbox();
  let runner: CodexRunner;
  try {
    runner = startCodexRunner(relay, sandbox, {
      agentId: AGENT,
      permissionPolicy: options.permissionPolicy ?? "allow",
      ...(options.providerArgs ? { providerArgs: options.providerArgs } : {}),
    });
  } catch (error) {
    await sandbox.close();
    await relay.close();
    throw error;
  }
  const poster = new Poster(relay);
  const w: World = {
    relay,
    sandbox,
    runner,
    send: (text, from = "user") => poster.post(AGENT, text, { from }),
    messages: () => relay.admin.state().messages,
    waitFor: (what, probe, options = {}) =>
      waitFor(what, probe, { signal: runner.exited, timeoutMs: options.timeoutMs ?? 15_000 }),
  };
  let failed = false;
  try {
    await w.waitFor("the runner on the bus", () => idleOnBus(w));
    await body(w);
  } catch (error) {
    failed = true;
    throw error;
  } finally {
    const { code, leftovers } = await runner.stopAll();
    if (failed) {
      // deno-lint-ignore no-console
      console.error(
        `--- runner log ---\n${await runner.log()}\n--- stderr ---\n${
          (await runner.output).stderr
        }`,
      );
    }
    await sandbox.close();
    await relay.close();
    if (!failed) {
      assert.equal(code, 0, `the runner exits 0 on SIGTERM: ${(await runner.output).stderr}`);
      assert.deepEqual(leftovers, [], "every process the runner started has exited");
    }
  }
}

/** The runner is connected and its provider idle (Codex started, thread open). */
function idleOnBus(w: World): boolean {
  const connected = w.relay.admin.connections().some((c) => c.agentId === AGENT);
  const last = w.relay.admin.state().statuses.filter((s) => s.agentId === AGENT).at(-1);
  return connected && last?.status === "idle";
}

function sessionMirror(w: World) {
  return mirrorEntries(w.relay, (m) => m.to === AGENT);
}

function restartDecisions(w: World): Message[] {
  return w.messages().filter((m) =>
    m.kind === "session" && m.body === "provider.restart_decision" &&
    JSON.stringify(m.payload).includes('"decision":"restart"')
  );
}

Deno.test({
  name: "e2e codex: a chat message is answered on the relay; prompt and steps are mirrored once",
  ignore: unavailable !== undefined,
  async fn() {
    await withRunner({}, async (w) => {
      w.sandbox.mock.enqueue(
        { type: "function_call", name: "exec_command", arguments: { cmd: "echo hello-from-tool" } },
        { type: "text", text: "The tool said hello." },
      );
      const sent = await w.send("RUN-ECHO please");
      const [reply] = await w.waitFor("the reply", () => {
        const r = repliesTo(w.relay, sent.id);
        return r.length > 0 && r;
      });
      assert.equal(reply?.body, "The tool said hello.");
      assert.equal(reply?.to, "user");
      await w.waitFor("mark-read", () => markedRead(w.relay, sent.id));

      // Codex got the message marked with its id and sender, after the first-prompt notes.
      const first = userTexts((await w.sandbox.mock.responsesRequest(0)).body).at(-1) ?? "";
      assert.ok(first.endsWith(`[relay message #${sent.id} from user]\nRUN-ECHO please`), first);
      assert.ok(first.includes(AGENT), "the first-prompt notes name the agent");

      await w.waitFor(
        "the tool result in the mirror",
        () => sessionMirror(w).some((m) => m.kind === "tool_result"),
      );
      const mirror = sessionMirror(w);
      assert.deepEqual(mirror.filter((m) => m.type === "prompt"), [
        { type: "prompt", from: "user", body: "RUN-ECHO please", messageId: sent.id },
      ]);
      const steps = mirror.filter((m) => m.type === "step");
      assert.deepEqual(
        steps.filter((m) => m.kind === "command").map((m) => [m.from, m.body]),
        [[AGENT, "/bin/bash -lc 'echo hello-from-tool'"]],
      );
      const results = steps.filter((m) => m.kind === "tool_result");
      assert.equal(results.length, 1, JSON.stringify(steps));
      assert.match(
        results[0]!.body,
        /^completed \(exit 0\): \/bin\/bash -lc 'echo hello-from-tool'\nhello-from-tool/,
      );
      // The final response is the reply, not mirrored again.
      assert.equal(
        w.messages().filter((m) => m.from === AGENT && m.body === "The tool said hello.").length,
        1,
      );
      assert.equal(repliesTo(w.relay, sent.id).length, 1);
    });
  },
});

Deno.test({
  name:
    "e2e codex: a bus interrupt ends a hanging turn with a failure reply; the next message is answered",
  ignore: unavailable !== undefined,
  async fn() {
    await withRunner({}, async (w) => {
      w.sandbox.mock.enqueue({ type: "hang" }, { type: "text", text: "after the interrupt" });
      const first = await w.send("take your time");
      await w.sandbox.mock.responsesRequest(0, { signal: AbortSignal.timeout(15_000) });
      await w.waitFor("busy", () => w.relay.admin.state().statuses.at(-1)?.status === "busy");
      const result = await w.relay.admin.sendCommand(AGENT, { type: "interrupt" });
      assert.deepEqual(result, { ok: true, result: { interrupted: true } });
      await w.waitFor(
        "the failed turn in the mirror",
        () => sessionMirror(w).some((m) => m.type === "error"),
      );
      assert.deepEqual(sessionMirror(w).filter((m) => m.type === "error").map((m) => m.body), [
        "The turn failed: Turn interrupted",
      ]);

      // Codex ended the turn itself: the interrupt watchdog did not have to kill it.
      assert.equal(restartDecisions(w).length, 0);
      assert.doesNotMatch(await w.runner.log(), /killing codex/);

      const second = await w.send("again");
      const [reply] = await w.waitFor("the second reply", () => {
        const r = repliesTo(w.relay, second.id);
        return r.length > 0 && r;
      });
      assert.equal(reply?.body, "after the interrupt");
      // The interrupted message was taken in (read), answered once with a failure reply, and is
      // not delivered again.
      assert.ok(markedRead(w.relay, first.id));
      const failed = repliesTo(w.relay, first.id);
      assert.equal(failed.length, 1);
      assert.deepEqual(failed[0]!.payload, {
        status: "failed",
        error: "The turn was interrupted by an operator.",
      });
      const last = userTexts((await w.sandbox.mock.responsesRequest(1)).body);
      assert.equal(last.at(-1), `[relay message #${second.id} from user]\nagain`);
      assert.equal(last.filter((t) => t.includes(`#${first.id} from user`)).length, 1);
    });
  },
});

Deno.test({
  name: "e2e codex: a 500 from the model fails the turn; the retry answers the same message",
  ignore: unavailable !== undefined,
  async fn() {
    await withRunner({}, async (w) => {
      w.sandbox.mock.enqueue(
        { type: "error", status: 500, message: "boom" },
        { type: "text", text: "recovered" },
      );
      const first = await w.send("fail please");
      await w.waitFor(
        "the failed turn in the mirror",
        () => sessionMirror(w).some((m) => m.type === "error"),
      );
      const errors = sessionMirror(w).filter((m) => m.type === "error");
      assert.equal(errors.length, 1, JSON.stringify(errors));
      assert.match(errors[0]!.body, /^The turn failed: \S/);
      const [reply] = await w.waitFor("the retry's answer", () => {
        const r = repliesTo(w.relay, first.id);
        return r.length > 0 && r;
      });
      assert.equal(reply?.body, "recovered");
      assert.ok(markedRead(w.relay, first.id));
      await w.waitFor("idle again", () => w.relay.admin.state().statuses.at(-1)?.status === "idle");
      assert.equal(repliesTo(w.relay, first.id).length, 1, "answered once");
    });
  },
});

Deno.test({
  name: "e2e codex: a model that keeps failing ends in one failure reply within the retry budget",
  ignore: unavailable !== undefined,
  async fn() {
    await withRunner({}, async (w) => {
      w.sandbox.mock.enqueue(
        { type: "error", status: 500, message: "boom" },
        { type: "error", status: 500, message: "boom again" },
        { type: "text", text: "too late" },
      );
      const first = await w.send("fail twice");
      const [reply] = await w.waitFor("the failure reply", () => {
        const r = repliesTo(w.relay, first.id);
        return r.length > 0 && r;
      }, { timeoutMs: 90_000 });
      const payload = reply!.payload as { status: string; error: string };
      assert.equal(payload.status, "failed");
      assert.match(payload.error, /\S\.$/);
      assert.ok(markedRead(w.relay, first.id));
      const second = await w.send("are you back?");
      const [next] = await w.waitFor("the next answer", () => {
        const r = repliesTo(w.relay, second.id);
        return r.length > 0 && r;
      }, { timeoutMs: 60_000 });
      assert.equal(next?.body, "too late");
      assert.equal(repliesTo(w.relay, first.id).length, 1, "one failure reply, no late answer");
    });
  },
});

Deno.test({
  name: "e2e codex: --permission-policy deny declines a command approval",
  ignore: unavailable !== undefined,
  async fn() {
    await withRunner(
      // Codex 0.169 refuses `approval_policy = "untrusted"` in its config (it exits at start), so
      // the approval comes from `on-request` (set through the provider args, which the adapter
      // then leaves alone) and a command that asks to run outside the sandbox.
      { permissionPolicy: "deny", providerArgs: ["-c", "approval_policy=on-request"] },
      async (w) => {
        const file = "made-by-deny.txt";
        w.sandbox.mock.enqueue(
          {
            type: "function_call",
            name: "exec_command",
            arguments: {
              cmd: `touch ${file}`,
              sandbox_permissions: "require_escalated",
              justification: "Make the file the user asked for?",
            },
          },
          { type: "text", text: "finished" },
        );
        const sent = await w.send("make a file");
        const [reply] = await w.waitFor("the reply", () => {
          const r = repliesTo(w.relay, sent.id);
          return r.length > 0 && r;
        });
        assert.equal(reply?.body, "finished");
        const exists = await Deno.stat(join(w.sandbox.cwd, file)).then(() => true, () => false);
        assert.equal(exists, false, "the declined command did not run");

        await w.waitFor(
          "the tool result in the mirror",
          () => sessionMirror(w).some((m) => m.kind === "tool_result"),
        );
        const steps = sessionMirror(w).filter((m) => m.type === "step");
        assert.deepEqual(steps.map((m) => m.kind), ["command", "permission", "tool_result"]);
        assert.equal(
          steps[1]?.body,
          `deny exec_command: /bin/bash -lc 'touch ${file}' (the runner's policy is deny)`,
        );
        assert.equal(steps[2]?.body, `declined: /bin/bash -lc 'touch ${file}'`);
        // The deny policy answers locally: the relay was not asked.
        assert.deepEqual(w.relay.admin.state().permissionRequests, []);
        // The model saw the command's outcome.
        const followUp = (await w.sandbox.mock.responsesRequest(1)).body as { input: unknown[] };
        assert.ok(
          followUp.input.some((i) => (i as { type?: string }).type === "function_call_output"),
          "the second request carries the function_call_output",
        );
      },
    );
  },
});

Deno.test({
  name:
    "e2e codex: a provider crash restarts Codex on the saved thread; the next message is answered",
  ignore: unavailable !== undefined,
  async fn() {
    await withRunner({}, async (w) => {
      w.sandbox.mock.enqueue({ type: "text", text: "remembered" }, {
        type: "text",
        text: "PELICAN",
      });
      const first = await w.send("remember the word PELICAN");
      await w.waitFor("the first reply", () => repliesTo(w.relay, first.id).length > 0);
      const sessionFile = join(w.runner.stateDir, "provider-session.json");
      const saved = JSON.parse(await Deno.readTextFile(sessionFile)) as {
        provider: string;
        id: string;
      };
      assert.equal(saved.provider, "codex");
      assert.ok(saved.id.length > 10, saved.id);

      const victim = await w.waitFor("the codex process", () => nativeCodexPid(w.runner.child.pid));
      const before = descendants(w.runner.child.pid);
      Deno.kill(victim, "SIGKILL");
      await w.waitFor(
        "the restart decision",
        () =>
          w.messages().some((m) =>
            m.kind === "session" && m.body === "provider.restart_decision" &&
            JSON.stringify(m.payload).includes('"decision":"restart"')
          ),
      );
      const fresh = await w.waitFor("a new codex process", () => {
        const pid = nativeCodexPid(w.runner.child.pid);
        return pid !== undefined && pid !== victim && pid;
      });
      assert.ok(!before.includes(fresh));
      await w.waitFor("idle after the restart", () => idleOnBus(w));
      // The old process tree is gone (the namespace's forwarder exits with its Codex).
      await w.waitFor("the old processes to exit", () =>
        before.every((pid) => {
          const argv = cmdline(pid);
          return argv === undefined || descendants(w.runner.child.pid).includes(pid);
        }));

      const second = await w.send("which word?");
      const [reply] = await w.waitFor("the second reply", () => {
        const r = repliesTo(w.relay, second.id);
        return r.length > 0 && r;
      });
      assert.equal(reply?.body, "PELICAN");
      // Resumed, not new: the same thread id, and the request carries the first turn.
      const after = JSON.parse(await Deno.readTextFile(sessionFile)) as { id: string };
      assert.equal(after.id, saved.id);
      assert.match(await w.runner.log(), new RegExp(`resumed Codex thread ${saved.id}`));
      const texts = userTexts((await w.sandbox.mock.responsesRequest(1)).body);
      assert.ok(
        texts.some((t) =>
          t.endsWith(`[relay message #${first.id} from user]\nremember the word PELICAN`)
        ),
        JSON.stringify(texts),
      );
      // A new Codex process gets the first-prompt notes again (they are per process).
      assert.ok(
        texts.at(-1)?.endsWith(`[relay message #${second.id} from user]\nwhich word?`),
        texts.at(-1),
      );
      // The first message was answered once and not delivered again.
      assert.equal(repliesTo(w.relay, first.id).length, 1);
      assert.equal(
        w.sandbox.mock.requests.filter((r) => r.path === "/v1/responses").length,
        2,
      );
    });
  },
});

Deno.test({
  name: "e2e codex: a crash mid-turn restarts Codex and the unanswered message is delivered again",
  ignore: unavailable !== undefined,
  async fn() {
    await withRunner({}, async (w) => {
      w.sandbox.mock.enqueue({ type: "hang" }, { type: "text", text: "answered after the crash" });
      const sent = await w.send("take your time");
      await w.sandbox.mock.responsesRequest(0, { signal: AbortSignal.timeout(15_000) });
      const victim = await w.waitFor("the codex process", () => nativeCodexPid(w.runner.child.pid));
      Deno.kill(victim, "SIGKILL");
      const [reply] = await w.waitFor("the reply after the restart", () => {
        const r = repliesTo(w.relay, sent.id);
        return r.length > 0 && r;
      });
      assert.equal(reply?.body, "answered after the crash");
      assert.equal(restartDecisions(w).length, 1);
      // The new process got the message again, on the resumed thread.
      const texts = userTexts((await w.sandbox.mock.responsesRequest(1)).body);
      assert.ok(
        texts.at(-1)?.endsWith(`[relay message #${sent.id} from user]\ntake your time`),
        JSON.stringify(texts),
      );
      await w.waitFor("idle", () => w.relay.admin.state().statuses.at(-1)?.status === "idle");
      assert.equal(repliesTo(w.relay, sent.id).length, 1);
      assert.equal(
        w.sandbox.mock.requests.filter((r) => r.path === "/v1/responses").length,
        2,
      );
    });
  },
});
