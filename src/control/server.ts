/**
 * Serving the control server: {@linkcode startControlServer} puts the handler of handler.ts on
 * 127.0.0.1 only, whatever the environment says, and hands the runner its port and secret.
 *
 * @module
 */
import { getLogger } from "../logger.ts";
import { errorText } from "../util/mod.ts";
import { type ControlHandler, type ControlOptions, createControlHandler } from "./handler.ts";
import { json } from "./http.ts";
import type { MonitorEvent } from "./monitor.ts";
import { generateSecret } from "./secret.ts";

/** How long closing waits for open connections before it goes on without them. */
export const CLOSE_GRACE_MS = 1_000;

const log = getLogger("control");

/** Options of {@linkcode startControlServer}: the handler's, plus the port and an optional secret. */
export interface ControlServerOptions extends Omit<ControlOptions, "secret"> {
  /** 0 = any free port. */
  port: number;
  /** Default: a fresh {@linkcode generateSecret}. */
  secret?: string;
}

/** A running control server. */
export interface ControlServer {
  /** The port it listens on (on 127.0.0.1). */
  readonly port: number;
  /** The bearer secret (give it to the provider as `AGENT_RELAY_RUNNER_SECRET`; never log it). */
  readonly secret: string;
  readonly handler: ControlHandler;
  /** Sends an event to every `/monitor` client. */
  publish(event: MonitorEvent): void;
  /** Closes monitor sockets and stops listening. */
  close(): Promise<void>;
}

const SERVE_OVERRIDE = "DENO_SERVE_ADDRESS";

/**
 * Removes `DENO_SERVE_ADDRESS` from the environment: Deno lets it override the address of the
 * next `Deno.serve` even when a hostname is given, or add a second listener (`duplicate,...`).
 * Throws when the variable cannot be checked (no env permission).
 */
function refuseServeAddressOverride(): void {
  const state = Deno.permissions.querySync({ name: "env", variable: SERVE_OVERRIDE }).state;
  if (state !== "granted") {
    throw new Error(
      `Cannot start the control server: checking ${SERVE_OVERRIDE} (which could move it off ` +
        `127.0.0.1) needs env permission`,
    );
  }
  const value = Deno.env.get(SERVE_OVERRIDE);
  if (value === undefined) return;
  Deno.env.delete(SERVE_OVERRIDE);
  log.warn(`ignoring ${SERVE_OVERRIDE}=${value}: the control server listens on 127.0.0.1 only`);
}

/** Starts the control server on 127.0.0.1 (never another address, whatever the environment). */
export function startControlServer(options: ControlServerOptions): ControlServer {
  const secret = options.secret ?? generateSecret();
  const handler = createControlHandler({ ...options, secret });
  refuseServeAddressOverride();
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: "127.0.0.1",
      port: options.port,
      onListen: () => {},
      onError: (error) => {
        log.error(`control server error: ${errorText(error)}`);
        return json({ error: "Internal error" }, 500);
      },
    }, (req) => handler(req));
  } catch (error) {
    handler.close();
    throw new Error(`Cannot listen on 127.0.0.1:${options.port}: ${errorText(error)}`);
  }
  if (server.addr.hostname !== "127.0.0.1") {
    handler.close();
    void server.shutdown();
    throw new Error(
      `The control server bound ${server.addr.hostname}, not 127.0.0.1; refusing to run`,
    );
  }
  log.info(`control server listening on 127.0.0.1:${server.addr.port}`);
  let closing: Promise<void> | undefined;
  return {
    port: server.addr.port,
    secret,
    handler,
    publish: handler.publish,
    close() {
      closing ??= (async () => {
        handler.close();
        // A graceful shutdown waits for every connection, and a half-sent request's never ends
        // (Deno keeps it open even after a 408): past the grace, the stop goes on without it.
        let timer: ReturnType<typeof setTimeout> | undefined;
        const grace = new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            log.warn(
              `closing the control server: connections still open after ${CLOSE_GRACE_MS} ms, left behind`,
            );
            resolve();
          }, CLOSE_GRACE_MS);
        });
        await Promise.race([server.shutdown(), grace]);
        clearTimeout(timer);
      })();
      return closing;
    },
  };
}
