import assert from "node:assert/strict";
import {
  firstPromptNotes,
  formatRelayMessage,
  workspaceNotes,
} from "../../src/adapters/relay_instructions.ts";

Deno.test("relay instructions: isolated workspaces get deps and symlink caveats", () => {
  const notes = workspaceNotes(JSON.stringify({
    mode: "isolated",
    deps: { mode: "shared" },
    symlinks: { linked: ["AGENTS.md", ".claude-rig"] },
  }));
  assert.match(notes, /dependencies .* SHARED with the main checkout/);
  assert.match(notes, /SYMLINKED from the main checkout: AGENTS\.md, \.claude-rig/);
});

Deno.test("relay instructions: a shared workspace, bad JSON or odd shapes add nothing", () => {
  assert.equal(workspaceNotes(JSON.stringify({ mode: "shared", symlinks: { linked: ["x"] } })), "");
  assert.equal(workspaceNotes("{not json"), "");
  assert.equal(workspaceNotes("42"), "");
  assert.equal(
    workspaceNotes(JSON.stringify({ mode: "isolated", symlinks: { linked: [1, null] } })),
    "",
  );
  assert.equal(workspaceNotes(undefined), "");
});

Deno.test("relay instructions: the first prompt names the agent and the message format", () => {
  const notes = firstPromptNotes(
    "alice",
    JSON.stringify({ mode: "isolated", deps: { mode: "none" } }),
  );
  assert.match(notes, /agent "alice"/);
  assert.match(notes, /NOT installed here/);
  assert.equal(
    formatRelayMessage({ id: 4, from: "bob", body: "hi" }),
    "[relay message #4 from bob]\nhi",
  );
});
