/**
 * The reference relay's WebSocket bus: the connected runners, fan-out of `message.new`,
 * commands sent to an agent and matched with their `command.result`, status frames stored
 * (last wins), pings answered, and the bus fault switches.
 *
 * @module
 */
import { getLogger } from "../logger.ts";
import { AGENT_STATUSES, type AgentStatus, type BusCommand, type Message } from "../types.ts";
import { type Clock, escapeText, type TimerId } from "../util/mod.ts";
import type { RelayStore } from "./store.ts";

const log = getLogger("dev-relay");

/** One open bus connection. */
export interface BusConnection {
  id: number;
  agentId: string;
  role: string;
  openedAt: string;
}

/** The answer to a command. */
export interface CommandResult {
  ok: boolean;
  result?: unknown;
  error?: string;
}

/** A command sent through the admin API, and what came back. */
export interface CommandRecord {
  id: string;
  agentId: string;
  command: BusCommand;
  sentAt: string;
  result?: CommandResult;
}

interface Conn extends BusConnection {
  socket: WebSocket;
  /** Kept in memory only, to close the socket when its token expires. */
  token: string;
  closed: Promise<void>;
}

/** Options of {@linkcode BusHub}. */
export interface BusHubOptions {
  store: RelayStore;
  /** Whether the bus is silent now (the `busSilent` fault). */
  silent: () => boolean;
  /** One readable line per bus event, for the CLI. */
  trace?: (line: string) => void;
  /** Timers (command timeouts, the close bound). */
  clock: Clock;
  /** The time, epoch ms. */
  now: () => number;
}

/** The bus side of the reference relay. */
export class BusHub {
  #o: BusHubOptions;
  #conns = new Map<number, Conn>();
  /** Every socket not yet closed, open or still upgrading. */
  #live = new Set<Conn>();
  #nextConn = 0;
  #nextCommand = 0;
  #pending = new Map<string, (result: CommandResult) => void>();
  #commands: CommandRecord[] = [];
  #opened = 0;

  constructor(options: BusHubOptions) {
    this.#o = options;
  }

  /** The open connections. */
  connections(): BusConnection[] {
    return [...this.#conns.values()].map(({ id, agentId, role, openedAt }) => ({
      id,
      agentId,
      role,
      openedAt,
    }));
  }

  /** How many bus connections were ever accepted. */
  get openedCount(): number {
    return this.#opened;
  }

  /** Commands sent so far, with their results. */
  commands(): CommandRecord[] {
    return this.#commands.map((c) => ({ ...c }));
  }

  #iso(): string {
    return new Date(this.#o.now()).toISOString();
  }

  #trace(line: string): void {
    const safe = escapeText(line);
    log.info(safe);
    this.#o.trace?.(safe);
  }

  /** Upgrades an authorized request to a bus connection. */
  accept(request: Request, agentId: string, role: string, token: string): Response {
    const { socket, response } = Deno.upgradeWebSocket(request);
    let markClosed = () => {};
    const conn: Conn = {
      id: ++this.#nextConn,
      agentId,
      role,
      token,
      openedAt: this.#iso(),
      socket,
      closed: new Promise<void>((resolve) => {
        markClosed = resolve;
      }),
    };
    this.#live.add(conn);
    socket.onopen = () => {
      this.#conns.set(conn.id, conn);
      this.#opened++;
      this.#trace(`bus open #${conn.id} ${agentId} (${role})`);
    };
    socket.onmessage = (event) => this.#frame(conn, event.data);
    socket.onclose = (event) => {
      if (this.#conns.delete(conn.id)) {
        this.#trace(`bus closed #${conn.id} ${agentId} (${event.code})`);
      }
      this.#live.delete(conn);
      markClosed();
    };
    socket.onerror = () => {
      // The close event follows.
    };
    return response;
  }

  #send(conn: Conn, frame: Record<string, unknown>): boolean {
    if (conn.socket.readyState !== WebSocket.OPEN) return false;
    try {
      conn.socket.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  #frame(conn: Conn, data: unknown): void {
    let parsed: unknown;
    try {
      parsed = typeof data === "string" ? JSON.parse(data) : undefined;
    } catch {
      parsed = undefined;
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      this.#send(conn, {
        type: "error",
        code: "bad_frame",
        message: "a frame must be a JSON object",
      });
      return;
    }
    const frame = parsed as Record<string, unknown>;
    switch (frame["type"]) {
      case "ping":
        if (!this.#o.silent()) this.#send(conn, { type: "pong", at: this.#o.now() });
        return;
      case "status": {
        const status = frame["status"];
        const at = typeof frame["at"] === "number" ? frame["at"] : this.#o.now();
        if (!AGENT_STATUSES.includes(status as AgentStatus)) {
          this.#send(conn, {
            type: "error",
            code: "bad_frame",
            message: `status must be one of ${AGENT_STATUSES.join(", ")}`,
          });
          return;
        }
        this.#o.store.addStatus({ agentId: conn.agentId, status: status as string, at });
        this.#trace(`bus status ${conn.agentId} ${status}`);
        return;
      }
      case "command.result": {
        const id = String(frame["id"]);
        const resolve = this.#pending.get(id);
        const result: CommandResult = { ok: frame["ok"] === true };
        if ("result" in frame) result.result = frame["result"];
        if (typeof frame["error"] === "string") result.error = frame["error"];
        this.#trace(`bus command ${id} ${result.ok ? "ok" : `failed: ${result.error ?? ""}`}`);
        if (resolve) {
          this.#pending.delete(id);
          resolve(result);
        }
        return;
      }
      default:
        this.#send(conn, {
          type: "error",
          code: "bad_frame",
          message: `unknown frame type ${JSON.stringify(frame["type"])}`,
        });
    }
  }

  /** Pushes `message.new` to the recipient's connections and to every `observer`. */
  fanOut(message: Message): number {
    if (this.#o.silent()) return 0;
    let sent = 0;
    for (const conn of this.#conns.values()) {
      if (conn.agentId === message.to || conn.role === "observer") {
        if (this.#send(conn, { type: "message.new", message })) sent++;
      }
    }
    return sent;
  }

  /**
   * Sends a command to the agent's newest `provider` connection and waits for its
   * `command.result` (at most `timeoutMs`, default 10 000).
   */
  async sendCommand(
    agentId: string,
    command: BusCommand,
    options: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<CommandResult> {
    const conn = [...this.#conns.values()].reverse().find((c) =>
      c.agentId === agentId && c.role === "provider"
    );
    if (!conn) throw new Error(`Agent "${agentId}" has no provider connection on the bus`);
    const id = `c${++this.#nextCommand}`;
    const record: CommandRecord = { id, agentId, command, sentAt: this.#iso() };
    this.#commands.push(record);
    const timeoutMs = options.timeoutMs ?? 10_000;
    let timer: TimerId | undefined;
    let onAbort = () => {};
    try {
      const result = await new Promise<CommandResult>((resolve, reject) => {
        this.#pending.set(id, resolve);
        timer = this.#o.clock.setTimeout(() => {
          reject(
            new Error(`Agent "${agentId}" did not answer command ${id} within ${timeoutMs}ms`),
          );
        }, timeoutMs);
        onAbort = () => reject(options.signal?.reason ?? new Error("cancelled"));
        options.signal?.addEventListener("abort", onAbort, { once: true });
        this.#trace(`bus command ${id} -> ${agentId}: ${command.type}`);
        if (!this.#send(conn, { type: "command", id, command })) {
          reject(new Error(`Agent "${agentId}"'s bus connection closed before command ${id}`));
        }
      });
      record.result = result;
      return result;
    } finally {
      this.#pending.delete(id);
      this.#o.clock.clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Sends an `error` frame to an agent's connections; closes them when `close` is set. */
  sendError(agentId: string, code: string, message: string, close = false): number {
    let sent = 0;
    for (const conn of this.#conns.values()) {
      if (conn.agentId !== agentId) continue;
      if (this.#send(conn, { type: "error", code, message })) sent++;
      if (close) closeQuietly(conn.socket, 4000, code);
    }
    return sent;
  }

  /** Closes connections whose token `stillValid` rejects, with a `token_expired` error frame. */
  expireConnections(stillValid: (token: string) => boolean): void {
    for (const conn of this.#conns.values()) {
      if (stillValid(conn.token)) continue;
      this.#send(conn, {
        type: "error",
        code: "token_expired",
        message: "the bearer token expired",
      });
      closeQuietly(conn.socket, 4001, "token expired");
    }
  }

  /** Closes every connection (`1012` service restart by default). */
  dropAll(code = 1012, reason = "relay dropped the connection"): void {
    for (const conn of this.#conns.values()) closeQuietly(conn.socket, code, reason);
  }

  /** Closes every connection and waits (bounded) until they are closed. */
  async close(): Promise<void> {
    const closing = [...this.#live].map((c) => c.closed);
    for (const conn of this.#live) closeQuietly(conn.socket, 1001, "relay shutting down");
    let timer: TimerId | undefined;
    await Promise.race([
      Promise.all(closing),
      new Promise<void>((resolve) => {
        timer = this.#o.clock.setTimeout(resolve, 2000);
      }),
    ]);
    this.#o.clock.clearTimeout(timer);
  }
}

function closeQuietly(socket: WebSocket, code: number, reason: string): void {
  try {
    socket.close(code, reason);
  } catch {
    // Already closing.
  }
}
