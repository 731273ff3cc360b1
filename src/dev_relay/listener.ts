/**
 * The reference relay's HTTP listener on 127.0.0.1: opened, shut for the `down` fault, and
 * opened again on the same port.
 *
 * @module
 */
import { getLogger } from "../logger.ts";
import { errorText } from "../util/mod.ts";
import { json } from "./http.ts";

const log = getLogger("dev-relay");

/** The listener; `port` 0 picks a free port at the first {@linkcode Listener.open}. */
export class Listener {
  #server: Deno.HttpServer<Deno.NetAddr> | undefined;
  #port: number;
  #handler: (request: Request) => Promise<Response>;

  constructor(port: number, handler: (request: Request) => Promise<Response>) {
    this.#port = port;
    this.#handler = handler;
  }

  /** The port, once opened (and kept while shut). */
  get port(): number {
    return this.#port;
  }

  /** Starts listening on the port. */
  open(): void {
    this.#server = Deno.serve({
      hostname: "127.0.0.1",
      port: this.#port,
      onListen() {},
      onError(error) {
        log.error(`request failed: ${errorText(error)}`);
        return json(500, { error: "internal error" });
      },
    }, this.#handler);
    this.#port = this.#server.addr.port;
  }

  /**
   * Stops listening (connections are refused): the server is let go at once, so a reopen does
   * not shut the new one; its shutdown starts after `before` (closing the bus) settled.
   */
  async shut(before?: () => Promise<void>): Promise<void> {
    const current = this.#server;
    this.#server = undefined;
    await before?.();
    if (current) await current.shutdown();
  }
}
