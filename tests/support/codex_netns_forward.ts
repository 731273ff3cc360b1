/**
 * A TCP-to-unix-socket forwarder that runs inside Codex's loopback-only network namespace.
 *
 * A fresh network namespace cannot reach the test's 127.0.0.1, but it shares the file system, so
 * the test serves its mock on a unix socket and this forwarder, started next to Codex inside the
 * namespace, listens on 127.0.0.1:PORT there and pipes each connection to that socket. It exits
 * by itself once the process it watches (Codex) has exited, so it never outlives a test.
 *
 * Usage: `deno run --allow-all codex_netns_forward.ts PORT SOCKET WATCH_PID` (Deno reads
 * `/proc/PID/stat` only with all permissions).
 *
 * @module
 */

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
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

async function serveConn(conn: Deno.TcpConn, socket: string): Promise<void> {
  let upstream: Deno.UnixConn;
  try {
    upstream = await Deno.connect({ transport: "unix", path: socket });
  } catch {
    conn.close();
    return;
  }
  await Promise.all([pipe(conn, upstream), pipe(upstream, conn)]);
  for (const c of [conn, upstream]) {
    try {
      c.close();
    } catch {
      // already closed
    }
  }
}

if (import.meta.main) {
  const [port, socket, watch] = Deno.args;
  if (!port || !socket || !watch) throw new Error("Usage: codex_netns_forward.ts PORT SOCKET PID");
  const listener = Deno.listen({ hostname: "127.0.0.1", port: Number(port) });
  // The script starts Codex on this line, once the port listens.
  // deno-lint-ignore no-console
  console.log("ready");
  const pid = Number(watch);
  setInterval(() => {
    if (!alive(pid)) Deno.exit(0);
  }, 100);
  for await (const conn of listener) serveConn(conn, socket);
}
