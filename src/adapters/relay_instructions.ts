/**
 * What the agent is told on its first turn: how relay messages reach it and how its answers go
 * back, plus the workspace caveats from `AGENT_RELAY_WORKSPACE_JSON` (isolated worktrees whose
 * dependencies or untracked files are shared with the main checkout).
 *
 * @module
 */

/** The relay context prepended to the agent's first turn. */
export function relayContext(agentId: string): string {
  return [
    `[agent-relay] You are agent "${agentId}" on Agent Relay.`,
    "Messages from people and other agents arrive marked `[relay message #ID from SENDER]`.",
    "Your final response of a turn is sent back to the sender(s) of the messages in that turn as",
    "the reply; you do not need to send it yourself.",
  ].join(" ");
}

/** The caveat for a workspace's dependency mode, or "" when there is nothing to say. */
export function workspaceDepsNote(
  input: { mode?: string | null; depsMode?: string | null },
): string {
  if (input.mode !== "isolated") return "";
  switch (input.depsMode) {
    case "shared":
    case "symlink":
      return "[agent-relay] Isolated workspace: dependencies (node_modules and the like) are " +
        "SHARED with the main checkout. Installing, upgrading or removing packages changes them " +
        "for every workspace: avoid it unless that is the task.";
    case "none":
    case "missing":
      return "[agent-relay] Isolated workspace: dependencies are NOT installed here. Install " +
        "them in this workspace before building or running tests.";
    default:
      return "";
  }
}

/** The caveat for untracked paths symlinked from the main checkout, or "" when none are. */
export function workspaceSymlinksNote(linked: readonly string[]): string {
  if (linked.length === 0) return "";
  return "[agent-relay] Isolated workspace: these untracked paths are SYMLINKED from the main " +
    `checkout: ${linked.join(", ")}. Editing or deleting them writes THROUGH to the main ` +
    "checkout: treat them as read-only unless you mean to change main.";
}

/**
 * The workspace caveats from `AGENT_RELAY_WORKSPACE_JSON` (`{mode, deps: {mode}, symlinks:
 * {linked}}`). Never throws: bad JSON or an unexpected shape yields "".
 */
export function workspaceNotes(json: string | undefined): string {
  if (!json) return "";
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return "";
  }
  if (typeof parsed !== "object" || parsed === null) return "";
  const w = parsed as {
    mode?: unknown;
    deps?: { mode?: unknown };
    symlinks?: { linked?: unknown };
  };
  const mode = typeof w.mode === "string" ? w.mode : null;
  const depsMode = typeof w.deps?.mode === "string" ? w.deps.mode : null;
  const linked = Array.isArray(w.symlinks?.linked)
    ? w.symlinks.linked.filter((p): p is string => typeof p === "string")
    : [];
  return [
    workspaceDepsNote({ mode, depsMode }),
    mode === "isolated" ? workspaceSymlinksNote(linked) : "",
  ].filter(Boolean).join("\n\n");
}

/** Everything for the first turn: the relay context, then the workspace caveats. */
export function firstPromptNotes(agentId: string, workspaceJson: string | undefined): string {
  return [relayContext(agentId), workspaceNotes(workspaceJson)].filter(Boolean).join("\n\n");
}

/** How a relay message is shown to the agent. */
export function formatRelayMessage(message: { id: number; from: string; body: string }): string {
  return `[relay message #${message.id} from ${message.from}]\n${message.body}`;
}
