/**
 * What the Claude real-CLI tests share (claude_test.ts, claude_plugin_test.ts): the installed
 * CLI, the mock API's script, and process probes.
 *
 * @module
 */
import { INSTALLED_CLAUDE, installedClaude } from "../support/claude_netns.ts";
import type { Recorder } from "../support/claude_session.ts";
import type { MockScript } from "../support/mock_anthropic.ts";

/** The installed CLI, or `undefined` (the real-CLI tests are then skipped). */
export const CLAUDE = installedClaude();
if (CLAUDE === undefined) {
  // deno-lint-ignore no-console
  console.log(
    `claude tests: skipping the real-CLI tests: Claude Code is not installed at ${INSTALLED_CLAUDE}` +
      " (run: bash scripts/install_providers.sh claude)",
  );
}

/** A test of the real CLI, skipped when it is not installed. */
export function realTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name: `claude (real CLI): ${name}`, ignore: CLAUDE === undefined, fn });
}

/** The mock API's replies by prompt. */
export const SCRIPT: MockScript = {
  rules: [
    { match: "STOP-ME", reply: [{ text: "Answering bob now." }] },
    {
      match: "RUN-ECHO",
      reply: [
        { thinking: "I should run echo" },
        { text: "Running it." },
        {
          tool_use: {
            name: "Bash",
            input: { command: "echo hello-from-tool", description: "echo" },
          },
        },
      ],
    },
    { match: "hello-from-tool", reply: [{ text: "The tool said hello." }] },
    { match: "HANG-NOW", reply: [{ text: "partial" }, { hang: true }] },
    { match: "PING", reply: [{ text: "PONG from mock" }] },
  ],
  fallback: [{ text: "fallback reply" }],
};

/** A script whose `TOUCH-<file>` prompts run `touch <file>` in Bash. */
export function touchScript(files: string[]): MockScript {
  return {
    rules: [
      ...files.map((file) => ({
        match: `TOUCH-${file}`,
        reply: [{
          tool_use: { name: "Bash", input: { command: `touch ${file}`, description: "touch" } },
        }],
      })),
      { match: "(Bash completed", reply: [{ text: "touched it" }] },
    ],
    fallback: [{ text: "could not touch it" }],
  };
}

/** The texts of the response events. */
export function responses(rec: Recorder): string[] {
  return rec.of("response").map((e) => e.text);
}

/** Whether `path` exists. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

export { alive, descendants } from "../support/process_tree.ts";
