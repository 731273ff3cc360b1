/**
 * Provider adapters: one per provider CLI (command, Claude Code, Codex), each turning relay
 * messages into the provider's input and its output into session events.
 *
 * The adapters themselves load lazily through {@linkcode adapterFor}: a run pays only for its own.
 *
 * @module
 */
import type { AdapterFactory } from "./adapter.ts";
import type { ProviderName } from "../types.ts";
import { importLazily } from "../util/mod.ts";

export * from "./adapter.ts";
export { firstPromptNotes } from "./relay_instructions.ts";
/** The hook plugin writer: the adapter writes it itself; bench/hooks_bench.ts uses it too. */
export { writePlugin } from "./claude_plugin.ts";

/** The adapter factory of `provider`, loaded on first use (src/util/import_lazily.ts). */
export async function adapterFor(provider: ProviderName): Promise<AdapterFactory> {
  switch (provider) {
    case "command":
      return (await importLazily<typeof import("./command.ts")>("./command.ts", import.meta.url))
        .createCommandAdapter;
    case "claude":
      return (await importLazily<typeof import("./claude.ts")>("./claude.ts", import.meta.url))
        .createClaudeAdapter;
    case "codex":
      return (await importLazily<typeof import("./codex.ts")>("./codex.ts", import.meta.url))
        .createCodexAdapter;
  }
}
