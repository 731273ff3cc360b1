/**
 * The runner's side of the relay's WebSocket bus (`GET /api/bus?agentId=ID&role=provider`),
 * on the built-in `WebSocket`.
 *
 * - The bearer token travels in the upgrade request's `Authorization` header (Deno's
 *   non-standard `new WebSocket(url, { headers })`), never in the URL, where proxies and
 *   access logs would keep it.
 * - The connection comes back by itself: capped exponential backoff with jitter (the shared
 *   helper in src/util/backoff.ts), reset once a connection has stayed up for `healthyAfterMs`. Each reconnect re-sends the last status
 *   frame (last wins) and calls `onReconnect` (the runner passes the outbox's `wake()`).
 * - A dead connection is noticed: after `pingIntervalMs` without a frame the client sends
 *   `{"type":"ping"}`; with no frame back within `pingTimeoutMs` it drops the socket and
 *   reconnects.
 * - `message.new` and `command` frames go to their handlers; a command is answered with
 *   `command.result`. `error` frames are classified by {@linkcode classifyBusError}: auth ->
 *   `onAuthError` (renew the token) and reconnect; fatal -> the bus closes and `onFatal` runs.
 *   A handshake refused with 401/403 is treated like an auth error frame.
 * - A frame over `maxFrameBytes` (default 1 MiB, the client's answer limit) is dropped with
 *   one log line: the catch-up poll finds its message.
 *
 * @module
 */
import { getLogger, type Logger } from "../logger.ts";
import type { AgentStatus, BusCommand, Message } from "../types.ts";
import {
  backoffDelay,
  type Clock,
  errorText,
  escapeText,
  systemClock,
  type TimerId,
} from "../util/mod.ts";
import { busUrl, classifyBusError } from "./bus_protocol.ts";
import { parseMessage } from "./wire.ts";

/** Where the bus is. */
export type BusState = "idle" | "connecting" | "open" | "closed";

/** Options of {@linkcode RelayBus}. */
export interface RelayBusOptions {
  /** The relay's base URL (`http://127.0.0.1:8787`). */
  baseUrl: string;
  agentId: string;
  /** Default `provider`. */
  role?: string;
  /** The current bearer token, read at every connect (so renewals apply). */
  token?: () => string | undefined;
  /** A `message.new` frame's message. */
  onMessage?: (message: Message) => void | Promise<void>;
  /** A command; its return value (or thrown error) becomes the `command.result`. */
  onCommand?: (command: BusCommand, id: string) => unknown;
  /** After every reconnect (not the first connect): the outbox's `wake()`. */
  onReconnect?: () => void;
  /** An auth failure: renew the token. The bus reconnects once this settles. */
  onAuthError?: () => unknown;
  /** A fatal `error` frame: the bus has closed; the runner should stop. */
  onFatal?: (code: string, message: string) => void;
  /** Every state change. */
  onStateChange?: (state: BusState) => void;
  /** First reconnect delay, milliseconds. Default 500. */
  initialBackoffMs?: number;
  /** Largest reconnect delay, milliseconds. Default 30 000. */
  maxBackoffMs?: number;
  /** A connection open this long resets the backoff, milliseconds. Default 10 000. */
  healthyAfterMs?: number;
  /** Send a ping after this long without a frame, milliseconds; 0 = never. Default 20 000. */
  pingIntervalMs?: number;
  /** Drop the connection when no frame answers a ping within this, milliseconds. Default 10 000. */
  pingTimeoutMs?: number;
  /** A frame larger than this many bytes (UTF-8) is dropped. Default 1 MiB. */
  maxFrameBytes?: number;
  /** Random numbers in [0, 1) for the jitter. Default `Math.random`. */
  random?: () => number;
  /** Time and timers (backoff, health, pings). Default the system clock. */
  clock?: Clock;
  /** The time, epoch ms, when it should differ from `clock.now`. */
  now?: () => number;
  /** Aborting closes the bus. */
  signal?: AbortSignal;
  /** Default: the `bus` logger. */
  logger?: Pick<Logger, "debug" | "info" | "warn" | "error">;
}

/** Options of {@linkcode RelayBus.whenConnected}. */
export interface WhenConnectedOptions {
  signal?: AbortSignal;
}

interface TrackedSocket {
  ws: WebSocket;
  closed: Promise<void>;
}

/** The relay bus connection of one runner. */
export class RelayBus {
  #o: RelayBusOptions;
  #clock: Clock;
  #now: () => number;
  #log: Pick<Logger, "debug" | "info" | "warn" | "error">;
  #url: string;
  #state: BusState = "idle";
  #ws: WebSocket | undefined;
  #sockets = new Set<TrackedSocket>();
  /** Sockets that reached the open state (a handshake error only matters before it). */
  #openSockets = new WeakSet<WebSocket>();
  #attempt = 0;
  #everConnected = false;
  #authPending = false;
  #reconnectTimer: TimerId | undefined;
  #healthyTimer: TimerId | undefined;
  #pingTimer: TimerId | undefined;
  #lastInbound = 0;
  #inbound = 0;
  #inboundAtPing: number | undefined;
  #status: { status: AgentStatus; at: number } | undefined;
  #waiters = new Set<{ resolve: () => void; reject: (error: Error) => void }>();
  #lastFailure: string | undefined;
  #onAbort = () => void this.close();

  constructor(options: RelayBusOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#now = options.now ?? (() => this.#clock.now());
    this.#log = options.logger ?? getLogger("bus");
    this.#url = busUrl(options.baseUrl, options.agentId, options.role ?? "provider");
    options.signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  /** The bus URL (it holds no secret). */
  get url(): string {
    return this.#url;
  }

  /** Where the bus is. */
  get state(): BusState {
    return this.#state;
  }

  /** Whether a connection is open now. */
  get connected(): boolean {
    return this.#state === "open";
  }

  /** Consecutive failed connection attempts since the last healthy connection. */
  get attempts(): number {
    return this.#attempt;
  }

  /** Starts connecting (non-blocking); the bus then stays connected until {@linkcode close}. */
  start(): void {
    if (this.#state !== "idle") return;
    if (this.#o.signal?.aborted) {
      void this.close();
      return;
    }
    this.#connect();
  }

  /** Resolves when a connection is open (now or later); rejects when the bus closes first. */
  whenConnected(options: WhenConnectedOptions = {}): Promise<void> {
    if (this.#state === "open") return Promise.resolve();
    if (this.#state === "closed") return Promise.reject(new Error("The relay bus is closed"));
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.#waiters.delete(waiter);
        reject(options.signal?.reason ?? new Error("Waiting for the relay bus was cancelled"));
      };
      const waiter = {
        resolve: () => {
          options.signal?.removeEventListener("abort", onAbort);
          resolve();
        },
        reject: (error: Error) => {
          options.signal?.removeEventListener("abort", onAbort);
          reject(error);
        },
      };
      if (options.signal?.aborted) return onAbort();
      options.signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.add(waiter);
    });
  }

  /** Sets the agent's status: sent now if connected, and again after every reconnect. */
  setStatus(status: AgentStatus, at: number = this.#now()): void {
    this.#status = { status, at };
    this.#sendStatus();
  }

  /** Sends a frame if connected; returns whether it was sent. */
  send(frame: Record<string, unknown>): boolean {
    const ws = this.#ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    try {
      ws.send(JSON.stringify(frame));
      return true;
    } catch (error) {
      this.#log.warn(`bus send failed: ${errorText(error)}`);
      return false;
    }
  }

  /** Closes the bus for good and waits (bounded) for the socket to close. */
  async close(): Promise<void> {
    if (this.#state === "closed") {
      await this.#awaitSockets();
      return;
    }
    this.#setState("closed");
    this.#o.signal?.removeEventListener("abort", this.#onAbort);
    this.#clearTimers();
    if (this.#reconnectTimer !== undefined) this.#clock.clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    const ws = this.#ws;
    this.#ws = undefined;
    if (ws) closeQuietly(ws, 1000, "runner closing the bus");
    for (const waiter of this.#waiters) waiter.reject(new Error("The relay bus is closed"));
    this.#waiters.clear();
    await this.#awaitSockets();
  }

  async #awaitSockets(): Promise<void> {
    if (this.#sockets.size === 0) return;
    let timer: TimerId | undefined;
    const cap = new Promise<void>((resolve) => {
      timer = this.#clock.setTimeout(resolve, 2000);
    });
    await Promise.race([Promise.all([...this.#sockets].map((s) => s.closed)), cap]);
    this.#clock.clearTimeout(timer);
  }

  #isClosed(): boolean {
    return this.#state === "closed";
  }

  #setState(state: BusState): void {
    if (this.#state === state) return;
    this.#state = state;
    try {
      this.#o.onStateChange?.(state);
    } catch (error) {
      this.#log.error(`bus state callback failed: ${errorText(error)}`);
    }
  }

  #connect(): void {
    if (this.#state === "closed") return;
    this.#setState("connecting");
    const token = this.#o.token?.();
    let ws: WebSocket;
    try {
      ws = new WebSocket(
        this.#url,
        token ? { headers: { authorization: `Bearer ${token}` } } : {},
      );
    } catch (error) {
      this.#failed(`cannot open the bus: ${errorText(error)}`);
      return;
    }
    this.#ws = ws;
    let markClosed = () => {};
    const tracked: TrackedSocket = {
      ws,
      closed: new Promise<void>((resolve) => {
        markClosed = resolve;
      }),
    };
    this.#sockets.add(tracked);
    let handshakeError: string | undefined;
    ws.onopen = () => {
      if (this.#ws === ws) this.#opened(ws);
    };
    ws.onmessage = (event) => {
      if (this.#ws === ws) this.#frame(ws, event.data);
    };
    ws.onerror = (event) => {
      const text = event instanceof ErrorEvent ? event.message : "WebSocket error";
      handshakeError = text;
      const status = /status code:?\s*(\d{3})/i.exec(text)?.[1];
      if (status === "401" || status === "403") this.#authPending = true;
    };
    ws.onclose = (event) => {
      this.#sockets.delete(tracked);
      markClosed();
      if (this.#ws !== ws) return;
      this.#ws = undefined;
      const why = handshakeError && !this.#wasOpen(ws)
        ? handshakeError.replace(/^NetworkError:\s*/, "")
        : `closed (${event.code}${event.reason ? ` ${event.reason}` : ""})`;
      this.#failed(why);
    };
  }

  #wasOpen(ws: WebSocket): boolean {
    return this.#openSockets.has(ws);
  }

  #opened(ws: WebSocket): void {
    this.#openSockets.add(ws);
    const reconnect = this.#everConnected;
    this.#everConnected = true;
    this.#lastInbound = this.#now();
    this.#inboundAtPing = undefined;
    if (reconnect) {
      this.#log.info(
        `bus reconnected${this.#attempt > 0 ? ` after ${this.#attempt} failed attempts` : ""}`,
      );
    } else {
      this.#log.info(`bus connected to ${this.#url}`);
    }
    this.#lastFailure = undefined;
    this.#setState("open");
    this.#sendStatus();
    this.#healthyTimer = this.#clock.setTimeout(() => {
      this.#healthyTimer = undefined;
      this.#attempt = 0;
    }, this.#o.healthyAfterMs ?? 10_000);
    this.#armPing(ws, this.#o.pingIntervalMs ?? 20_000);
    for (const waiter of this.#waiters) waiter.resolve();
    this.#waiters.clear();
    if (reconnect) {
      try {
        this.#o.onReconnect?.();
      } catch (error) {
        this.#log.error(`bus reconnect callback failed: ${errorText(error)}`);
      }
    }
  }

  /** The connection is gone (or never came): schedule the next attempt. */
  #failed(why: string): void {
    this.#clearTimers();
    if (this.#state === "closed") return;
    const delay = this.#backoff();
    this.#attempt++;
    if (why !== this.#lastFailure) {
      this.#lastFailure = why;
      this.#log.warn(`bus ${why}; reconnecting with backoff (next try in ${delay}ms)`);
    } else {
      this.#log.debug(`bus attempt ${this.#attempt} failed: ${why}; next try in ${delay}ms`);
    }
    this.#setState("connecting");
    this.#reconnectTimer = this.#clock.setTimeout(() => {
      this.#reconnectTimer = undefined;
      void this.#reconnect();
    }, delay);
  }

  /**
   * The relay answers again (a probe saw it): if the bus is waiting out a backoff, try now
   * instead. Does nothing while connected, connecting or closed.
   */
  reconnectNow(): void {
    if (this.#isClosed() || this.#reconnectTimer === undefined) return;
    this.#clock.clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    void this.#reconnect();
  }

  async #reconnect(): Promise<void> {
    if (this.#isClosed()) return;
    if (this.#authPending) {
      this.#authPending = false;
      try {
        await this.#o.onAuthError?.();
      } catch (error) {
        this.#log.warn(`bus token renewal failed: ${errorText(error)}`);
      }
      // close() may have run while the renewal was awaited.
      if (this.#isClosed()) return;
    }
    this.#connect();
  }

  /**
   * Equal jitter: after the n-th failure in a row, uniform in [step / 2, step] where the step
   * is `initialBackoffMs * 2^(n-1)` capped at `maxBackoffMs`.
   */
  #backoff(): number {
    const shape = {
      baseMs: this.#o.initialBackoffMs ?? 500,
      maxMs: this.#o.maxBackoffMs ?? 30_000,
    };
    return backoffDelay(this.#attempt + 1, shape, this.#o.random ?? Math.random);
  }

  #clearTimers(): void {
    if (this.#healthyTimer !== undefined) this.#clock.clearTimeout(this.#healthyTimer);
    if (this.#pingTimer !== undefined) this.#clock.clearTimeout(this.#pingTimer);
    this.#healthyTimer = undefined;
    this.#pingTimer = undefined;
  }

  #armPing(ws: WebSocket, ms: number): void {
    const interval = this.#o.pingIntervalMs ?? 20_000;
    if (interval <= 0) return;
    this.#pingTimer = this.#clock.setTimeout(() => {
      this.#pingTimer = undefined;
      this.#checkAlive(ws);
    }, ms);
  }

  #checkAlive(ws: WebSocket): void {
    if (this.#ws !== ws) return;
    const interval = this.#o.pingIntervalMs ?? 20_000;
    const timeout = this.#o.pingTimeoutMs ?? 10_000;
    if (this.#inboundAtPing !== undefined) {
      if (this.#inbound === this.#inboundAtPing) {
        this.#drop(ws, `connection dead (no answer to a ping within ${timeout}ms)`);
        return;
      }
      this.#inboundAtPing = undefined;
    }
    const idle = this.#now() - this.#lastInbound;
    if (idle >= interval) {
      this.#inboundAtPing = this.#inbound;
      this.send({ type: "ping", at: this.#now() });
      this.#armPing(ws, timeout);
    } else {
      this.#armPing(ws, interval - idle);
    }
  }

  /** Abandons a socket now (without waiting for its close handshake) and reconnects. */
  #drop(ws: WebSocket, why: string): void {
    if (this.#ws !== ws) return;
    this.#ws = undefined;
    closeQuietly(ws, 4000, "runner reconnecting");
    this.#failed(why);
  }

  #sendStatus(): void {
    if (!this.#status) return;
    this.send({
      type: "status",
      agentId: this.#o.agentId,
      status: this.#status.status,
      at: this.#status.at,
    });
  }

  #frame(ws: WebSocket, data: unknown): void {
    this.#inbound++;
    this.#lastInbound = this.#now();
    if (typeof data !== "string") {
      this.#log.warn("bus frame ignored: not text");
      return;
    }
    const limit = this.#o.maxFrameBytes ?? 1024 * 1024;
    if (overBytes(data, limit)) {
      this.#log.warn(
        `bus frame dropped: more than ${limit} bytes (the next poll finds its message)`,
      );
      return;
    }
    let frame: unknown;
    try {
      frame = JSON.parse(data);
    } catch {
      this.#log.warn(`bus frame ignored: not JSON: ${escapeText(data.slice(0, 120))}`);
      return;
    }
    if (typeof frame !== "object" || frame === null || Array.isArray(frame)) {
      this.#log.warn("bus frame ignored: not an object");
      return;
    }
    const f = frame as Record<string, unknown>;
    switch (f["type"]) {
      case "message.new":
        return this.#onMessage(f["message"]);
      case "command":
        return void this.#onCommand(f);
      case "error":
        return this.#onError(ws, f);
      case "pong":
        return;
      default:
        this.#log.debug(`bus frame of unknown type ${JSON.stringify(f["type"])} ignored`);
    }
  }

  #onMessage(raw: unknown): void {
    const message = parseMessage(raw);
    if (!message) {
      this.#log.warn(
        `bus message.new ignored: malformed message ${
          escapeText(String(JSON.stringify(raw)).slice(0, 200))
        }`,
      );
      return;
    }
    if (!this.#o.onMessage) return;
    try {
      const result = this.#o.onMessage(message);
      if (result instanceof Promise) {
        result.catch((error) => this.#log.error(`bus message handler failed: ${errorText(error)}`));
      }
    } catch (error) {
      this.#log.error(`bus message handler failed: ${errorText(error)}`);
    }
  }

  async #onCommand(frame: Record<string, unknown>): Promise<void> {
    const id = frame["id"];
    const command = frame["command"];
    if (typeof id !== "string" && typeof id !== "number") {
      this.#log.warn("bus command ignored: no id");
      return;
    }
    const commandId = String(id);
    let result: Record<string, unknown>;
    if (
      typeof command !== "object" || command === null || Array.isArray(command) ||
      typeof (command as Record<string, unknown>)["type"] !== "string"
    ) {
      result = { ok: false, error: "command has no type" };
    } else if (!this.#o.onCommand) {
      result = { ok: false, error: "this runner handles no commands" };
    } else {
      const cmd = command as BusCommand;
      this.#log.info(`bus command ${commandId}: ${cmd.type}`);
      try {
        const value = await this.#o.onCommand(cmd, commandId);
        result = { ok: true, result: value ?? null };
      } catch (error) {
        result = { ok: false, error: errorText(error) };
      }
    }
    if (!this.send({ type: "command.result", id, ...result })) {
      this.#log.warn(`bus command ${commandId} result lost: the bus is not connected`);
    }
  }

  #onError(ws: WebSocket, frame: Record<string, unknown>): void {
    const code = typeof frame["code"] === "string" ? frame["code"] : "unknown";
    const message = typeof frame["message"] === "string" ? frame["message"] : "";
    const action = classifyBusError(code);
    if (action === "auth") {
      this.#log.warn(`bus error ${code}: ${message}; renewing the token and reconnecting`);
      this.#authPending = true;
      this.#drop(ws, `auth error ${code}`);
    } else if (action === "fatal") {
      this.#log.error(`bus error ${code}: ${message}; closing the bus`);
      void this.close();
      try {
        this.#o.onFatal?.(code, message);
      } catch (error) {
        this.#log.error(`bus fatal callback failed: ${errorText(error)}`);
      }
    } else {
      this.#log.warn(`bus error ${code}: ${message}`);
    }
  }
}

function closeQuietly(ws: WebSocket, code: number, reason: string): void {
  try {
    ws.close(code, reason);
  } catch {
    // Already closing.
  }
}

/** Whether `text` is more than `limit` bytes as UTF-8, without encoding it. */
function overBytes(text: string, limit: number): boolean {
  if (text.length > limit) return true;
  if (text.length * 3 <= limit) return false;
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    bytes += c < 0x80 ? 1 : c < 0x800 ? 2 : c >= 0xd800 && c <= 0xdbff ? 4 : 3;
    if (c >= 0xd800 && c <= 0xdbff) i++;
    if (bytes > limit) return true;
  }
  return false;
}
