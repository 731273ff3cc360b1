/**
 * `agent-relay-runner attach` through the real program against a live runner (the reference
 * relay, the runner under its sandbox, the echo agent): driven in a pseudo-terminal (tmux) a
 * typed line makes the round trip and shows coloured, Ctrl-C detaches and the runner stays up;
 * with stdin at its end it keeps watching, in plain text, and `--since` replays the mirror.
 */
import assert from "node:assert/strict";
import { startDevRelay } from "../../src/dev_relay/mod.ts";
import { ECHO } from "../support/agents.ts";
import { withHome } from "../support/home.ts";
import { Poster, replies } from "../support/relay_messages.ts";
import { MAIN } from "../support/run_main.ts";
import { startRunner } from "../support/runner_process.ts";
import { waitFor } from "../support/wait.ts";
import { runCli, spawnCli } from "./cli_process.ts";

/** A tmux server of the test's own, so parallel tests never share one. */
class Tmux {
  readonly socket = `arr-attach-${crypto.randomUUID().slice(0, 8)}`;

  async run(...args: string[]): Promise<string> {
    const out = await new Deno.Command("tmux", { args: ["-L", this.socket, ...args] }).output();
    if (!out.success) {
      throw new Error(`tmux ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
    }
    return new TextDecoder().decode(out.stdout);
  }

  /** The pane's text; with `escapes`, its colour sequences too. */
  pane(escapes = false): Promise<string> {
    return this.run("capture-pane", "-p", ...(escapes ? ["-e"] : []), "-t", "attach");
  }

  async close(): Promise<void> {
    await this.run("kill-server").catch(() => {});
  }
}

function quote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

Deno.test("attach: in a terminal, a typed line makes the round trip; Ctrl-C detaches, the runner stays", async () => {
  const relay = await startDevRelay({ port: 0 });
  const tmux = new Tmux();
  try {
    await withHome("arr-attach-", async (home) => {
      const runner = startRunner(relay, { agentId: "echo", home, providerArgs: [ECHO] });
      await runner.info();
      const env = {
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
        // Deno's cache lives under the real HOME (or DENO_DIR).
        HOME: Deno.env.get("HOME") ?? home,
        ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
        TERM: "xterm-256color",
        AGENT_RELAY_HOME: home,
        AGENT_RELAY_URL: relay.url,
        AGENT_RELAY_TOKEN: relay.token,
      };
      const command = [
        "env -i",
        ...Object.entries(env).map(([k, v]) => `${k}=${quote(v)}`),
        quote(Deno.execPath()),
        "run -A --frozen",
        quote(MAIN),
        "attach --agent-id echo",
        "; echo EXIT=$?; sleep 600",
      ].join(" ");
      await tmux.run("new-session", "-d", "-s", "attach", "-x", "220", "-y", "50", command);
      await waitFor("attach's first line", async () => /attached to echo/.test(await tmux.pane()))
        .catch(async (error) => {
          throw new Error(`${error.message}; the pane shows:\n${await tmux.pane()}`);
        });

      await tmux.run("send-keys", "-t", "attach", "hello from the terminal", "Enter");
      const pane = await waitFor("the answer in the stream", async () => {
        const text = await tmux.pane();
        return /reply +echo → operator #\d+ \(reply to #\d+\): echo: hello from the terminal/
          .test(text) && text;
      });
      assert.match(pane, /you +operator → echo #\d+: hello from the terminal/);
      assert.match(pane, /prompt +from operator \(#\d+\): hello from the terminal/);
      assert.match(pane, /status +idle → busy/);
      const sent = relay.admin.state().messages.find((m) => m.body === "hello from the terminal");
      assert.equal(sent?.from, "operator");
      assert.equal(sent?.kind, "chat");
      assert.ok((await tmux.pane(true)).includes("\x1b[32mreply"), "coloured on a terminal");

      await tmux.run("send-keys", "-t", "attach", "C-c");
      const detached = await waitFor("the detach", async () => {
        const text = await tmux.pane();
        return /EXIT=\d+/.test(text) && text;
      });
      assert.match(detached, /detached from echo; the runner keeps running\nEXIT=0/);
      const status = await runner.status();
      assert.equal(status.status, "idle", "the runner still runs");
      assert.equal(await runner.stop(), 0);
    });
  } finally {
    await tmux.close();
    await relay.close();
  }
});

Deno.test("attach: at the end of stdin it keeps watching, in plain text; --since replays the mirror", async () => {
  const relay = await startDevRelay({ port: 0 });
  try {
    await withHome("arr-attach-", async (home) => {
      const runner = startRunner(relay, { agentId: "echo", home, providerArgs: [ECHO] });
      await runner.info();
      const poster = new Poster(relay);
      await poster.post("echo", "before attach");
      await waitFor("the first reply", () => replies(relay).length === 1);
      await runner.settled();

      const child = spawnCli(
        ["attach", "--agent-id", "echo", "--since", "1"],
        { AGENT_RELAY_HOME: home, AGENT_RELAY_URL: relay.url, AGENT_RELAY_TOKEN: relay.token },
      );
      let stdout = "";
      const decoder = new TextDecoder();
      const reading = child.stdout.pipeTo(
        new WritableStream({ write: (chunk) => void (stdout += decoder.decode(chunk)) }),
      );
      const stderr = new Response(child.stderr).text();
      await waitFor("attach's first line", () => /attached to echo/.test(stdout));
      assert.match(stdout, /prompt +from user \(#\d+\): before attach\n.*attached to echo/);

      // stdin is already at its end (/dev/null): attach is still there to show the next message.
      await poster.post("echo", "after attach");
      await waitFor(
        "the live reply",
        () => /reply +echo → user #\d+ .*: echo: after attach/.test(stdout),
      );
      assert.match(stdout, /message +user → echo #\d+: after attach/);
      assert.equal(stdout.includes("\x1b"), false, "no colours when stdout is not a terminal");

      child.kill("SIGINT");
      assert.equal((await child.status).code, 0);
      await reading;
      assert.match(await stderr, /detached from echo; the runner keeps running/);
      assert.equal((await runner.status()).status, "idle");
      assert.equal(await runner.stop(), 0);
    });
  } finally {
    await relay.close();
  }
});

Deno.test("attach: no runner exits 1 with one line; a bad --since exits 2", async () => {
  await withHome("arr-attach-", async (home) => {
    const none = await runCli(["attach", "--agent-id", "ghost"], { AGENT_RELAY_HOME: home });
    assert.equal(none.code, 1);
    assert.match(
      none.stderr.trim(),
      /^agent-relay-runner: No runner is running for ghost: [^\n]+$/,
    );
    const bad = await runCli(["attach", "--agent-id", "a", "--since", "lots"], {
      AGENT_RELAY_HOME: home,
    });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr.trim(), /^agent-relay-runner: --since "lots" must be a whole number/);
  });
});
