/**
 * Writes the Claude Code hook plugin (the repository's `hooks/` folder) into the agent's state
 * dir at start, so `claude --plugin-dir <state>/claude-plugin` loads it.
 *
 * The files are read relative to this module (`../hooks/`), which also works inside a binary
 * built with `deno compile --include hooks`. They are listed in {@linkcode PLUGIN_FILES} rather
 * than discovered, so a missing file is a clear error, not a plugin that silently lacks a hook.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { HOOK_EVENTS } from "../control/mod.ts";
import { errorText } from "../util/mod.ts";

/** Every file of the plugin, relative to its root. */
export const PLUGIN_FILES: readonly string[] = [
  ".claude-plugin/plugin.json",
  "hooks/hooks.json",
  "hooks/lib.sh",
  ...Object.keys(HOOK_EVENTS).map((event) => `hooks/${event}.sh`),
];

/** The plugin's folder name inside the state dir. */
export const PLUGIN_DIR_NAME = "claude-plugin";

const SOURCE = new URL("../../hooks/", import.meta.url);

/**
 * Copies the plugin into `<stateDir>/claude-plugin/` (replacing an older copy whole) and
 * returns that path. Scripts get mode 0700, other files 0600, folders 0700.
 */
export async function writePlugin(stateDir: string): Promise<string> {
  const target = join(stateDir, PLUGIN_DIR_NAME);
  const staging = join(stateDir, `.${PLUGIN_DIR_NAME}.${crypto.randomUUID()}`);
  await Deno.mkdir(stateDir, { recursive: true, mode: 0o700 });
  try {
    for (const file of PLUGIN_FILES) {
      let bytes: Uint8Array;
      try {
        bytes = await Deno.readFile(new URL(file, SOURCE));
      } catch (error) {
        throw new Error(
          `Cannot read the hook plugin file ${file} from ${SOURCE.href}: ${errorText(error)}`,
        );
      }
      const path = join(staging, file);
      await Deno.mkdir(dirname(path), { recursive: true, mode: 0o700 });
      const mode = file.endsWith(".sh") ? 0o700 : 0o600;
      await Deno.writeFile(path, bytes, { mode });
      await Deno.chmod(path, mode);
    }
    await Deno.remove(target, { recursive: true }).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
    await Deno.rename(staging, target);
  } catch (error) {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    throw error;
  }
  return target;
}
