/**
 * The adapter contract (conformance.ts) run against every adapter that works here without a
 * model: `command` with examples/echo-agent, `claude` with the scripted CLI
 * (tests/fixtures/claude/fake_claude.ts), `codex` with the scripted app-server
 * (tests/fixtures/fake_codex_app_server.ts).
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { type AdapterContext, defaultSpawner, type Spawner } from "../../src/adapters/adapter.ts";
import { createClaudeAdapter } from "../../src/adapters/claude.ts";
import { createCodexAdapter } from "../../src/adapters/codex.ts";
import { createCommandAdapter } from "../../src/adapters/command.ts";
import { getLogger } from "../../src/logger.ts";
import { conformanceSuite } from "./conformance.ts";

const ECHO = fileURLToPath(new URL("../../examples/echo-agent", import.meta.url));
const FAKE_CLAUDE = fileURLToPath(new URL("../fixtures/claude/fake_claude.ts", import.meta.url));
const FAKE_CODEX = fileURLToPath(
  new URL("../fixtures/fake_codex_app_server.ts", import.meta.url),
);

/** Runs the Deno script `script` whatever executable the adapter asks for. */
function scriptSpawner(script: string): Spawner {
  return (_command, options) =>
    new Deno.Command(Deno.execPath(), {
      ...options,
      args: ["run", "-A", "--no-config", script, ...(options.args ?? [])],
    }).spawn();
}

async function context(
  provider: AdapterContext["provider"],
  spawn: Spawner,
  args: string[] = [],
): Promise<AdapterContext> {
  const dir = await Deno.makeTempDir({ prefix: `conformance-${provider}-` });
  return {
    agentId: "agent-1",
    provider,
    cwd: dir,
    stateDir: dir,
    args,
    env: {},
    permissionPolicy: "deny",
    decidePermission: () => Promise.resolve({ decision: "deny", reason: "test policy" }),
    spawn,
    log: getLogger(`conformance-${provider}`),
  };
}

const removing = (dir: string) => () => Deno.remove(dir, { recursive: true });

conformanceSuite({
  name: "command",
  create: async (events, spawn) => {
    const ctx = await context("command", spawn, [ECHO]);
    return { adapter: createCommandAdapter(ctx, events), cleanup: removing(ctx.cwd) };
  },
  responseTo: (body) => `echo: ${body}`,
  failingBody: "/fail The model is down.",
}, defaultSpawner);

conformanceSuite({
  name: "claude",
  create: async (events, spawn) => {
    const ctx = await context("claude", spawn);
    const adapter = createClaudeAdapter(ctx, events, { bin: "claude-fake" });
    return { adapter, cleanup: removing(ctx.cwd) };
  },
  responseTo: (body) => `echo: ${body}`,
  hangingBody: "HANG",
  failingBody: "FAIL",
}, scriptSpawner(FAKE_CLAUDE));

conformanceSuite({
  name: "codex",
  create: async (events, spawn) => {
    const ctx = await context("codex", spawn);
    const adapter = createCodexAdapter(ctx, events, { bin: "codex-fake" });
    return { adapter, cleanup: removing(ctx.cwd) };
  },
  responseTo: (body) => `echo: ${body}`,
  hangingBody: "SILENT",
  failingBody: "FAIL",
}, scriptSpawner(FAKE_CODEX));
