/**
 * The provider session (Claude) or thread (Codex) id, kept in the state dir so a restarted runner
 * resumes the same conversation. A dead id is dropped by the runner when resuming fails fast.
 *
 * @module
 */
import { join, writeFileNoFollow } from "../util/mod.ts";

/** Saved session state. */
export interface SavedSession {
  provider: string;
  id: string;
  /** Epoch ms of the save. */
  savedAt: number;
}

function pathOf(stateDir: string): string {
  return join(stateDir, "provider-session.json");
}

/** The saved id for `provider`, if any. */
export function loadSession(stateDir: string, provider: string): string | undefined {
  try {
    const saved = JSON.parse(Deno.readTextFileSync(pathOf(stateDir))) as Partial<SavedSession>;
    return saved.provider === provider && typeof saved.id === "string" && saved.id
      ? saved.id
      : undefined;
  } catch {
    return undefined;
  }
}

/** Saves (atomically, 0600) the id for `provider`. */
export function saveSession(stateDir: string, provider: string, id: string): void {
  const path = pathOf(stateDir);
  const saved: SavedSession = { provider, id, savedAt: Date.now() };
  writeFileNoFollow(path, JSON.stringify(saved) + "\n", 0o600);
}

/** Forgets the saved id. */
export function clearSession(stateDir: string): void {
  try {
    Deno.removeSync(pathOf(stateDir));
  } catch {
    // Nothing saved.
  }
}
