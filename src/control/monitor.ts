/**
 * `GET /monitor`: a WebSocket feed for operators. Each client gets a `hello` with the status
 * snapshot, then every published event (status, outbox, hooks...) and every log entry, as JSON
 * text frames. The log is subscribed to only while a client is connected; a client further
 * behind than {@linkcode MAX_MONITOR_BUFFER} is disconnected rather than buffered for.
 *
 * @module
 */
import { type LogEntry, onLogEntry } from "../logger.ts";
import { errorText } from "../util/mod.ts";
import { HttpError } from "./http.ts";

/** An event for `/monitor` clients: `type` plus any fields. `at` is added when missing. */
export interface MonitorEvent {
  type: string;
  [field: string]: unknown;
}

/** A monitor client further behind than this many bytes is disconnected. */
export const MAX_MONITOR_BUFFER = 4 * 1024 * 1024;

/** Options of {@linkcode Monitor}. */
export interface MonitorOptions {
  /** Epoch milliseconds now, for `at`. */
  now: () => number;
  /** The `status` of the hello a client gets first; a throw sends `error` instead. */
  status: () => unknown;
}

/** The `/monitor` clients and the feed to them. */
export class Monitor {
  readonly #sockets = new Set<WebSocket>();
  readonly #options: MonitorOptions;
  #unsubscribeLog: (() => void) | undefined;

  constructor(options: MonitorOptions) {
    this.#options = options;
  }

  /** How many clients are connected. */
  get clients(): number {
    return this.#sockets.size;
  }

  /** Sends `event` to every client (`at` added when missing); nothing when there is none. */
  publish(event: MonitorEvent): void {
    if (this.#sockets.size === 0) return;
    const text = JSON.stringify(
      event.at === undefined ? { ...event, at: this.#options.now() } : event,
    );
    for (const socket of this.#sockets) this.#send(socket, text);
  }

  /** Upgrades `GET /monitor` to a WebSocket client; 400 for anything but an upgrade. */
  accept(req: Request): Response {
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      throw new HttpError(400, "GET /monitor needs a WebSocket upgrade");
    }
    let upgraded: { socket: WebSocket; response: Response };
    try {
      upgraded = Deno.upgradeWebSocket(req);
    } catch (error) {
      throw new HttpError(400, `The WebSocket upgrade failed: ${errorText(error)}`);
    }
    const { socket, response } = upgraded;
    socket.addEventListener("open", () => {
      this.#sockets.add(socket);
      this.#unsubscribeLog ??= onLogEntry(this.#onLog);
      this.#send(socket, JSON.stringify(this.#hello()));
    });
    const drop = () => {
      this.#sockets.delete(socket);
      if (this.#sockets.size === 0) this.#stopLog();
    };
    socket.addEventListener("close", drop);
    socket.addEventListener("error", drop);
    return response;
  }

  /** Closes every client (1001) and the log subscription. */
  close(): void {
    for (const socket of this.#sockets) {
      try {
        socket.close(1001, "control server closing");
      } catch {
        // Already closed.
      }
    }
    this.#sockets.clear();
    this.#stopLog();
  }

  readonly #onLog = (entry: LogEntry) => this.publish({ type: "log", ...entry });

  #hello(): MonitorEvent {
    const at = this.#options.now();
    try {
      return { type: "hello", at, status: this.#options.status() };
    } catch (error) {
      return { type: "hello", at, error: errorText(error) };
    }
  }

  #stopLog(): void {
    this.#unsubscribeLog?.();
    this.#unsubscribeLog = undefined;
  }

  #send(socket: WebSocket, text: string): void {
    if (socket.readyState !== WebSocket.OPEN) return;
    if (socket.bufferedAmount > MAX_MONITOR_BUFFER) {
      socket.close(1013, "monitor client too slow");
      return;
    }
    try {
      socket.send(text);
    } catch {
      // The socket closed meanwhile.
    }
  }
}
