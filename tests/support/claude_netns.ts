/**
 * Runs the real Claude Code CLI for tests inside a fresh loopback-only network namespace, with
 * its own HOME and temp dirs, reaching only the servers the test chooses.
 *
 * The arrangement: a test server (the mock Anthropic API, later the runner's control server)
 * runs in the test process. A fresh network namespace cannot reach the test's 127.0.0.1, but it
 * shares the file system, so each server is offered on a Unix socket, and a small forwarder
 * started inside the namespace (this file, run as a script) listens on 127.0.0.1:PORT there and
 * pipes each connection to the socket. The CLI is started with
 *
 * ```
 * unshare --user --map-root-user --net --pid --fork --kill-child bash -c SCRIPT
 * ```
 *
 * SCRIPT brings `lo` up, starts the forwarder, waits until it says it listens, then runs the CLI
 * in the foreground (bash stays pid 1 of the namespace and reaps). Only `lo` exists in there, so
 * nothing can leave the machine. Killing the `unshare` process (SIGKILL; it ignores SIGTERM)
 * kills bash via `--kill-child`, and the end of pid 1 ends every process of the namespace: the
 * CLI, its tool shells and hooks, and the forwarder. Closing stdin ends the CLI normally.
 *
 * For a TCP server of the test (the runner's control server), {@linkcode serveTcpOnUnix} offers
 * it on a Unix socket, so the forwarder can reach it under the same port number inside; the
 * spawner does this by itself for the port named by `AGENT_RELAY_RUNNER_PORT` in the spawned
 * command's environment, so hooks reach the runner as they would outside a sandbox.
 *
 * Forwarder usage: `deno run --allow-net=127.0.0.1,unix:SOCKET --allow-read=SOCKET
 * --allow-write=SOCKET claude_netns.ts PORT=SOCKET...` (connecting to a Unix socket needs net
 * permission for `unix:<path>` and read and write permission for the path).
 *
 * @module
 */
import { isAbsolute, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Spawner } from "../../src/adapters/adapter.ts";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const REPO = join(HERE, "..", "..");

/** Where `scripts/install_providers.sh claude` puts the pinned CLI. */
export const INSTALLED_CLAUDE = join(
  REPO,
  ".tmp",
  "providers",
  "claude",
  "node_modules",
  ".bin",
  "claude",
);

/** The installed CLI's path, or `undefined` when it is not installed. */
export function installedClaude(): string | undefined {
  try {
    return Deno.statSync(INSTALLED_CLAUDE).isFile ? INSTALLED_CLAUDE : undefined;
  } catch {
    return undefined;
  }
}

/** A port inside the namespace forwarded to a Unix socket outside. */
export interface Forward {
  port: number;
  /** The socket's path; a relative one is taken inside the sandbox's socket dir. */
  socket: string;
}

/** Options of {@linkcode createClaudeSandbox}. */
export interface ClaudeSandboxOptions {
  /** Ports to forward into the namespace. */
  forwards: Forward[];
  /** `ANTHROPIC_BASE_URL` inside (default `http://127.0.0.1:<first forward's port>`). */
  baseUrl?: string;
  /** More environment for the CLI. */
  env?: Record<string, string>;
  /**
   * When the spawned command's environment names `AGENT_RELAY_RUNNER_PORT` (the runner's control
   * server, listening on the test's 127.0.0.1), offer that port inside the namespace too, through
   * {@linkcode serveTcpOnUnix} (default true). The bridges close with `cleanup()`.
   */
  bridgeRunnerPort?: boolean;
}

/** A per-test sandbox: its dirs and the {@linkcode Spawner} that runs commands inside. */
export interface ClaudeSandbox {
  /** The temp root (removed by `cleanup`). */
  root: string;
  home: string;
  /** A working directory for the agent. */
  cwd: string;
  /** A directory for Unix sockets (short paths). */
  sockets: string;
  spawn: Spawner;
  /** The environment the CLI gets (besides the adapter's `AGENT_RELAY_*` variables). */
  env: Record<string, string>;
  cleanup(): Promise<void>;
}

const SCRIPT = `
set -u
ip link set lo up
specs=()
while [[ $# -gt 0 && $1 != -- ]]; do specs+=("$1"); shift; done
shift
if [[ \${#specs[@]} -gt 0 ]]; then
  # The forwarder says "ready" once it listens on every port. (Probing the ports instead could
  # connect a probe to itself, which then held the port the forwarder needed.)
  coproc FORWARDER { "$CLAUDE_NETNS_DENO" run --no-config --no-lock \\
    --allow-net="$CLAUDE_NETNS_ALLOW_NET" --allow-read="$CLAUDE_NETNS_SOCKETS" \\
    --allow-write="$CLAUDE_NETNS_SOCKETS" "$CLAUDE_NETNS_FORWARDER" "\${specs[@]}" </dev/null; }
  if ! read -r -t 30 said <&"\${FORWARDER[0]}" || [[ $said != ready ]]; then
    echo "claude-netns: the port forwarder did not start" >&2
    exit 97
  fi
fi
unset CLAUDE_NETNS_DENO CLAUDE_NETNS_FORWARDER CLAUDE_NETNS_ALLOW_NET CLAUDE_NETNS_SOCKETS
"$@"
`;

/** Variables of the adapter's environment that reach the CLI in the sandbox. */
function passes(key: string): boolean {
  return key.startsWith("AGENT_RELAY_") || key === "PATH" || key === "LANG";
}

/** Makes a sandbox: temp HOME, TMPDIR, XDG_RUNTIME_DIR, cwd, and the namespaced spawner. */
export async function createClaudeSandbox(options: ClaudeSandboxOptions): Promise<ClaudeSandbox> {
  const root = await Deno.makeTempDir({ prefix: "arr-claude-" });
  const home = join(root, "home");
  const tmp = join(root, "tmp");
  const xdg = join(root, "xdg");
  const cwd = join(root, "work");
  const sockets = join(root, "s");
  for (const dir of [home, tmp, xdg, cwd, sockets]) await Deno.mkdir(dir, { recursive: true });
  await Deno.chmod(xdg, 0o700);
  const first = options.forwards[0];
  const env: Record<string, string> = {
    HOME: home,
    TMPDIR: tmp,
    CLAUDE_CODE_TMPDIR: tmp,
    XDG_RUNTIME_DIR: xdg,
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
    DISABLE_TELEMETRY: "1",
    DISABLE_AUTOUPDATER: "1",
    DISABLE_ERROR_REPORTING: "1",
    ANTHROPIC_API_KEY: "sk-test-not-a-real-key",
    ANTHROPIC_BASE_URL: options.baseUrl ??
      (first ? `http://127.0.0.1:${first.port}` : "http://127.0.0.1:9"),
    ...options.env,
  };
  const bridges = new Map<number, UnixBridge>();
  const runnerForward = (env: Record<string, string> | undefined): Forward[] => {
    const port = Number(env?.AGENT_RELAY_RUNNER_PORT);
    if (options.bridgeRunnerPort === false || !Number.isInteger(port) || port <= 0) return [];
    if (options.forwards.some((f) => f.port === port)) return [];
    let bridge = bridges.get(port);
    if (bridge === undefined) {
      bridge = serveTcpOnUnix(port, join(sockets, `runner-${port}.sock`));
      bridges.set(port, bridge);
    }
    return [{ port, socket: bridge.socket }];
  };
  const spawn: Spawner = (command, spawnOptions) => {
    const inner: Record<string, string> = {};
    for (const [key, value] of Object.entries(spawnOptions.env ?? {})) {
      if (passes(key)) inner[key] = value;
    }
    inner.PATH ??= Deno.env.get("PATH") ?? "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
    if (!inner.PATH.split(":").includes("/usr/sbin")) inner.PATH += ":/usr/sbin:/sbin";
    const targets = [...options.forwards, ...runnerForward(spawnOptions.env)].map((f) => ({
      port: f.port,
      socket: isAbsolute(f.socket) ? f.socket : join(sockets, f.socket),
    }));
    const specs = targets.map((t) => `${t.port}=${t.socket}`);
    Object.assign(inner, env, {
      CLAUDE_NETNS_DENO: Deno.execPath(),
      CLAUDE_NETNS_FORWARDER: fileURLToPath(import.meta.url),
      CLAUDE_NETNS_ALLOW_NET: ["127.0.0.1", ...targets.map((t) => `unix:${t.socket}`)].join(","),
      CLAUDE_NETNS_SOCKETS: targets.map((t) => t.socket).join(","),
    });
    return new Deno.Command("unshare", {
      ...spawnOptions,
      args: [
        "--user",
        "--map-root-user",
        "--net",
        "--pid",
        "--fork",
        "--kill-child",
        "bash",
        "-c",
        SCRIPT,
        "claude-netns",
        ...specs,
        "--",
        command,
        ...(spawnOptions.args ?? []),
      ],
      env: inner,
      clearEnv: true,
    }).spawn();
  };
  return {
    root,
    home,
    cwd,
    sockets,
    spawn,
    env,
    cleanup: async () => {
      for (const bridge of bridges.values()) await bridge.close();
      bridges.clear();
      await Deno.remove(root, { recursive: true }).catch(() => {});
    },
  };
}

/** A running {@linkcode serveTcpOnUnix} bridge. */
export interface UnixBridge {
  socket: string;
  close(): Promise<void>;
}

/**
 * Offers the TCP server at 127.0.0.1:`port` (of the test's namespace) on the Unix socket
 * `socket`, so a sandbox can forward the same port to it.
 */
export function serveTcpOnUnix(port: number, socket: string): UnixBridge {
  const listener = Deno.listen({ transport: "unix", path: socket });
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  const serve = async () => {
    for await (const conn of listener) {
      conns.add(conn);
      const task = (async () => {
        let upstream: Deno.TcpConn | undefined;
        try {
          upstream = await Deno.connect({ hostname: "127.0.0.1", port });
          conns.add(upstream);
          await Promise.all([pipe(conn, upstream), pipe(upstream, conn)]);
        } catch {
          // the server or the client went away
        } finally {
          for (const c of [conn, upstream]) {
            if (!c) continue;
            conns.delete(c);
            try {
              c.close();
            } catch { /* already closed */ }
          }
        }
      })();
      tasks.add(task);
      task.finally(() => tasks.delete(task));
    }
  };
  const served = serve().catch(() => {});
  return {
    socket,
    close: async () => {
      try {
        listener.close();
      } catch { /* already closed */ }
      for (const c of conns) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      await served;
      await Promise.all([...tasks]);
    },
  };
}

async function pipe(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  try {
    await from.readable.pipeTo(to.writable, { preventClose: true });
  } catch {
    // one side went away
  }
  try {
    await to.closeWrite();
  } catch {
    // already closed
  }
}

async function forward(listener: Deno.TcpListener, socket: string): Promise<void> {
  for await (const conn of listener) {
    (async () => {
      let upstream: Deno.UnixConn | undefined;
      try {
        upstream = await Deno.connect({ transport: "unix", path: socket });
        await Promise.all([pipe(conn, upstream), pipe(upstream, conn)]);
      } catch {
        // the socket's server is gone
      } finally {
        for (const c of [conn, upstream]) {
          try {
            c?.close();
          } catch { /* already closed */ }
        }
      }
    })();
  }
}

if (import.meta.main) {
  const specs = Deno.args.map((arg) => {
    const eq = arg.indexOf("=");
    const port = Number(arg.slice(0, eq));
    const socket = arg.slice(eq + 1);
    if (eq < 1 || !Number.isInteger(port) || socket === "") {
      throw new Error(`Forward "${arg}" is not PORT=SOCKET`);
    }
    return { port, socket };
  });
  // Every port listens before "ready" goes out (the script starts the CLI on that line).
  const listening = specs.map((s) => ({
    listener: Deno.listen({ hostname: "127.0.0.1", port: s.port }),
    socket: s.socket,
  }));
  // deno-lint-ignore no-console
  console.log("ready");
  await Promise.all(listening.map((l) => forward(l.listener, l.socket)));
}
