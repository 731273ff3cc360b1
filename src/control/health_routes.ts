/**
 * The endpoints served without the secret: `GET /health` (the process answers; the relay's auth
 * state) and `GET /ready` (the runner can take work: 200, else 503 with the reason), which an
 * orchestrator polls after starting a runner (docs/control-server.md).
 *
 * Neither reveals more than a liveness bit, the relay auth state and a one-line reason.
 *
 * @module
 */
import { getLogger, redact } from "../logger.ts";
import { errorText } from "../util/mod.ts";
import type { ControlCallbacks, Readiness, RelayAuth } from "./callbacks.ts";
import { json } from "./http.ts";
import type { RouteMethods } from "./routes.ts";

const log = getLogger("control");

const AUTH_STATES: ReadonlySet<string> = new Set(["ok", "unauthorized", "unknown"]);

/** The relay auth state from the runner's callback: `unknown` when absent, odd or failing. */
export function relayAuthOf(callbacks: ControlCallbacks): RelayAuth {
  if (!callbacks.relayAuth) return "unknown";
  try {
    const auth = callbacks.relayAuth();
    return AUTH_STATES.has(auth) ? auth : "unknown";
  } catch (error) {
    log.debug(`the relay auth state could not be read: ${errorText(error)}`);
    return "unknown";
  }
}

/** The runner's readiness: ready when there is no callback; a throw is "not ready" with why. */
export function readinessOf(callbacks: ControlCallbacks): Readiness {
  if (!callbacks.readiness) return { ready: true };
  try {
    const r = callbacks.readiness();
    if (r.ready === true) return { ready: true };
    const reason = typeof r.reason === "string" && r.reason ? r.reason : "not ready";
    // Served without the secret: a secret the reason happened to carry is redacted.
    return { ready: false, reason: redact(reason).slice(0, 500) };
  } catch (error) {
    return { ready: false, reason: redact(`the readiness check failed: ${errorText(error)}`) };
  }
}

/** `/health` and `/ready`, as `[path, methods]` pairs for the route table. */
export function healthRoutes(callbacks: ControlCallbacks): Array<[string, RouteMethods]> {
  return [
    ["/health", { GET: () => json({ ok: true, relay: { auth: relayAuthOf(callbacks) } }) }],
    ["/ready", {
      GET: () => {
        const r = readinessOf(callbacks);
        return r.ready ? json({ ready: true }) : json({ ready: false, reason: r.reason }, 503);
      },
    }],
  ];
}
