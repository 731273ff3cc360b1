/**
 * Half-sent requests for the control server's limit tests and the hook bench: connections that
 * send part of a request and stall, and a count of the server's established connections read
 * from `/proc/net/tcp` (the server side of each: local port = the server's port).
 *
 * @module
 */

/** What a stalled client sent before it stopped. */
export type HalfSent =
  /** Part of the header block (no blank line): Deno.serve never sees the request. */
  | "headers"
  /** Full headers without the secret, declaring 100 bytes, then 3: answered 401 at once. */
  | "body-unauthenticated"
  /** Full headers with `secret`, declaring 100 bytes, then 3: the body read's deadline. */
  | "body";

const encoder = new TextEncoder();

/** Opens `n` connections to 127.0.0.1:`port`, each sending part of a request as `kind` says. */
export async function openHalfSent(
  port: number,
  n: number,
  options: { kind: HalfSent; secret?: string },
): Promise<Deno.TcpConn[]> {
  const head = "POST /hooks/stop HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  const text = options.kind === "headers"
    ? `${head}X-Slow: a`
    : `${head}${
      options.kind === "body" ? `Authorization: Bearer ${options.secret}\r\n` : ""
    }Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a`;
  const conns: Deno.TcpConn[] = [];
  for (let i = 0; i < n; i++) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(encoder.encode(text));
    conns.push(conn);
  }
  return conns;
}

/** Closes connections, ignoring those the server closed already. */
export function closeAll(conns: Deno.TcpConn[]): void {
  for (const conn of conns) {
    try {
      conn.close();
    } catch {
      // Closed already.
    }
  }
}

/** How many established TCP connections have local port `port` on 127.0.0.1 (IPv4). */
export function serverConnections(port: number): number {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  let count = 0;
  for (const line of Deno.readTextFileSync("/proc/net/tcp").split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 4) continue;
    if (fields[1] === `0100007F:${hex}` && fields[3] === "01") count++;
  }
  return count;
}
