/**
 * The reference relay (`agent-relay-runner dev-relay`): a real HTTP + WebSocket server on
 * 127.0.0.1 that implements the whole runner <-> relay contract (docs/protocol.md) on
 * `node:sqlite`, with fault switches and an admin API for tests.
 *
 * - `/api/*` needs `Authorization: Bearer <token>`: the root token (`--token`, default
 *   `dev`, never expires) or one issued by `POST /api/tokens/renew` (valid until its
 *   `expiresAt`; renewing does not revoke the old one). A token expired less than
 *   `renewGraceMs` ago may still renew itself, and nothing else.
 * - `/admin/*` needs the root token, whatever its expiry, and is never faulted.
 * - `GET /health` needs nothing.
 *
 * This file wires the parts together and writes one trace line per request (every control
 * character escaped); the routes live in api*.ts and admin_http.ts.
 *
 * @module
 */
import { getLogger } from "../logger.ts";
import { errorText, escapeText, systemClock } from "../util/mod.ts";
import { createAdmin } from "./admin.ts";
import { adminHttp } from "./admin_http.ts";
import { api } from "./api.ts";
import { TOKEN_SHAPE } from "./auth.ts";
import { BusHub } from "./bus_hub.ts";
import type { RelayContext, RouteCall } from "./context.ts";
import { HttpError, json } from "./http.ts";
import { Listener } from "./listener.ts";
import { RelayStore } from "./store.ts";
import { Switchboard } from "./switchboard.ts";
import type { DevRelay, DevRelayOptions } from "./types.ts";

const log = getLogger("dev-relay");

/** Starts the reference relay on 127.0.0.1. */
export async function startDevRelay(options: DevRelayOptions = {}): Promise<DevRelay> {
  const rootToken = options.token ?? "dev";
  if (!TOKEN_SHAPE.test(rootToken)) {
    throw new TypeError("The relay token must be 1 to 512 printable characters without spaces");
  }
  const clock = options.clock ?? systemClock;
  const now = options.now ?? (() => clock.now());
  const tokenTtlMs = options.tokenTtlMs ?? 60 * 60 * 1000;
  // Trace lines quote agent ids, paths and bodies: no control character gets out raw.
  const trace = (line: string) => {
    const safe = escapeText(line);
    log.info(safe);
    options.trace?.(safe);
  };
  const store = new RelayStore(options.dbPath ?? ":memory:", { now });
  store.setRootToken(rootToken);
  const lifetime = new AbortController();
  const hub = new BusHub({
    store,
    silent: () => ctx.switches.faults.busSilent,
    now,
    clock,
    trace: (line) => options.trace?.(line),
  });
  const listener = new Listener(options.port ?? 0, handle);
  const switches = new Switchboard({
    listener,
    hub,
    clock,
    trace,
    ...(options.faults ? { faults: options.faults } : {}),
    ...(options.permission ? { permission: options.permission } : {}),
  });
  const ctx: RelayContext = {
    store,
    hub,
    switches,
    admin: createAdmin({ store, hub, switches, tokenTtlMs, trace }),
    clock,
    now,
    rootToken,
    tokenTtlMs,
    renewGraceMs: options.renewGraceMs ?? 24 * 60 * 60 * 1000,
    signal: lifetime.signal,
  };

  /** Routes one request and writes its trace line. */
  async function handle(request: Request): Promise<Response> {
    const started = now();
    const url = new URL(request.url);
    const path = url.pathname;
    let detail = "";
    const call: RouteCall = {
      request,
      path,
      url,
      note: (s) => {
        detail = s;
      },
    };
    let response: Response;
    try {
      if (path === "/health") response = json(200, { ok: true });
      else if (path.startsWith("/admin/")) response = await adminHttp(ctx, call);
      else if (path.startsWith("/api/")) response = await api(ctx, call);
      else throw new HttpError(404, `no such endpoint: ${request.method} ${path}`);
    } catch (error) {
      if (error instanceof HttpError) {
        detail = detail ? `${detail}: ${error.message}` : error.message;
        response = json(error.status, { error: error.message });
      } else {
        const message = errorText(error);
        log.error(escapeText(`${request.method} ${path} failed: ${message}`));
        detail = `internal error: ${message}`;
        response = json(500, { error: "internal error" });
      }
    }
    trace(
      `${request.method} ${path} ${response.status} ${now() - started}ms${
        detail ? ` ${detail}` : ""
      }`,
    );
    return response;
  }

  listener.open();
  if (options.faults?.down) await switches.set({ down: true });

  let closing: Promise<void> | undefined;
  const relay: DevRelay = {
    get url() {
      return `http://127.0.0.1:${listener.port}`;
    },
    get port() {
      return listener.port;
    },
    token: rootToken,
    admin: ctx.admin,
    close() {
      closing ??= (async () => {
        options.signal?.removeEventListener("abort", onAbort);
        lifetime.abort();
        await ctx.switches.close();
        store.close();
      })();
      return closing;
    },
  };
  const onAbort = () => void relay.close();
  if (options.signal?.aborted) await relay.close();
  else options.signal?.addEventListener("abort", onAbort, { once: true });
  return relay;
}
