/**
 * A sandbox for running the real Codex CLI in tests: its own CODEX_HOME, HOME, TMPDIR and
 * workspace, a mock Responses API, and a loopback-only network namespace.
 *
 * Arrangement: the test process serves {@linkcode startMockOpenAI} on a unix socket in the
 * sandbox dir. The adapter under test is given `bin` = tests/support/codex_netns.sh, which
 * re-executes itself under `unshare --user --map-root-user --net`, brings up `lo`, starts a tiny
 * forwarder (127.0.0.1:{@linkcode NETNS_PORT} inside the namespace → the unix socket), and
 * `exec`s the real Codex. Codex's config.toml points its only model provider at that port, and
 * the namespace has no other interface: nothing Codex does can leave the machine. A fixed port is
 * safe because every Codex gets a fresh namespace with nothing else in it.
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type MockOpenAI, startMockOpenAI } from "./mock_openai.ts";

/** The pinned real Codex CLI installed by `scripts/install_providers.sh codex`. */
export const CODEX_BIN = fileURLToPath(
  new URL("../../.tmp/providers/codex/node_modules/.bin/codex", import.meta.url),
);
/** The namespace wrapper, a drop-in for the codex executable. */
export const CODEX_NETNS_WRAPPER = fileURLToPath(new URL("./codex_netns.sh", import.meta.url));
/** The forwarder's port inside each fresh namespace. */
export const NETNS_PORT = 41234;

/** Why the real-CLI tests cannot run here, or `undefined` when they can. */
export function codexUnavailableReason(): string | undefined {
  try {
    Deno.statSync(CODEX_BIN);
  } catch {
    return `the real Codex CLI is not installed at ${CODEX_BIN} ` +
      "(run `bash scripts/install_providers.sh codex`)";
  }
  return undefined;
}

/** A prepared sandbox; close it after stopping the Codex that used it. */
export interface CodexSandbox {
  /** The sandbox root (removed by `close`). */
  readonly dir: string;
  /** The workspace Codex runs in. */
  readonly cwd: string;
  readonly codexHome: string;
  readonly mock: MockOpenAI;
  /** The executable to spawn in place of `codex`. */
  readonly bin: string;
  /** Environment for the Codex process (CODEX_HOME, HOME, TMPDIR, the wrapper's variables). */
  readonly env: Record<string, string>;
  close(): Promise<void>;
}

/** Options for {@linkcode createCodexSandbox}. */
export interface CodexSandboxOptions {
  /** Extra top-level TOML lines for config.toml (before the tables). */
  extraConfig?: string;
}

/** The config.toml that keeps Codex on the mock and its retries finite. */
export function codexConfigToml(port: number, extra = ""): string {
  return [
    `model = "gpt-5.2-codex"`,
    `model_provider = "mock"`,
    `check_for_update_on_startup = false`,
    extra,
    ``,
    `[model_providers.mock]`,
    `name = "mock"`,
    `base_url = "http://127.0.0.1:${port}/v1"`,
    `wire_api = "responses"`,
    `request_max_retries = 0`,
    `stream_max_retries = 0`,
    ``,
    `[analytics]`,
    `enabled = false`,
    ``,
    `[feedback]`,
    `enabled = false`,
    ``,
    `[features]`,
    `plugins = false`,
    `unbounded_connection_retries = false`,
    ``,
  ].join("\n");
}

/** Creates a sandbox dir with a config.toml and a mock on a unix socket. */
export async function createCodexSandbox(options: CodexSandboxOptions = {}): Promise<CodexSandbox> {
  const dir = await Deno.makeTempDir({ prefix: "codex-sandbox-" });
  const codexHome = join(dir, "codex-home");
  const cwd = join(dir, "workspace");
  const tmp = join(dir, "tmp");
  for (const d of [codexHome, cwd, tmp]) await Deno.mkdir(d);
  await Deno.writeTextFile(
    join(codexHome, "config.toml"),
    codexConfigToml(NETNS_PORT, options.extraConfig),
  );
  const socket = join(dir, "mock.sock");
  const mock = startMockOpenAI({ path: socket });
  const env: Record<string, string> = {
    CODEX_HOME: codexHome,
    HOME: dir,
    TMPDIR: tmp,
    CODEX_NETNS_BIN: CODEX_BIN,
    CODEX_NETNS_SOCKET: socket,
    CODEX_NETNS_PORT: String(NETNS_PORT),
    CODEX_NETNS_DENO: Deno.execPath(),
    RUST_LOG: "error",
  };
  return {
    dir,
    cwd,
    codexHome,
    mock,
    bin: CODEX_NETNS_WRAPPER,
    env,
    async close() {
      await mock.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
