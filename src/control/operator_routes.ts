/**
 * The operator endpoints: `GET`/`POST /status`, `GET /reply-obligations` and `GET`/`POST
 * /log-level`, plus {@linkcode statusBody}, the status snapshot they and the monitor's hello
 * show (the runner's snapshot with the uptime and the obligation snapshot's age added).
 *
 * @module
 */
import { getLogger, getLogLevel, LOG_LEVELS, parseLogLevel, setLogLevel } from "../logger.ts";
import { AGENT_STATUSES, type AgentStatus } from "../types.ts";
import type { ControlCallbacks, ObligationSource } from "./callbacks.ts";
import { HttpError, json, optionalTypes, readObject } from "./http.ts";
import type { RouteMethods } from "./routes.ts";

const log = getLogger("control");

/** How many obligations the snapshot holds, when it was refreshed, and why it last failed. */
function obligationInfo(obligations: ObligationSource, now: number): Record<string, unknown> {
  const refreshedAt = obligations.refreshedAt;
  const info: Record<string, unknown> = {
    count: obligations.get().length,
    refreshedAt: refreshedAt ?? null,
    ageMs: refreshedAt === undefined ? null : Math.max(0, now - refreshedAt),
  };
  const lastError = obligations.lastError;
  if (lastError !== undefined) info["lastError"] = lastError;
  return info;
}

/** `GET /status`'s body: the runner's snapshot plus `uptimeMs` and `obligations`. */
export function statusBody(callbacks: ControlCallbacks, now: number): Record<string, unknown> {
  const s = callbacks.status();
  return {
    ...s,
    uptimeMs: Math.max(0, now - s.startedAt),
    obligations: obligationInfo(callbacks.obligations, now),
  };
}

/** Options of {@linkcode operatorRoutes}. */
export interface OperatorRoutesOptions {
  /** Epoch milliseconds now. */
  now: () => number;
  maxBodyBytes: number;
}

/** The operator endpoints, as `[path, methods]` pairs for the route table. */
export function operatorRoutes(
  callbacks: ControlCallbacks,
  options: OperatorRoutesOptions,
): Array<[string, RouteMethods]> {
  const { now, maxBodyBytes } = options;

  const postStatus = async (req: Request): Promise<Response> => {
    const { value } = await readObject(req, maxBodyBytes);
    optionalTypes(value, { source: "string" });
    const status = value["status"];
    if (typeof status !== "string" || !(AGENT_STATUSES as readonly string[]).includes(status)) {
      throw new HttpError(400, `Field "status" must be one of: ${AGENT_STATUSES.join(", ")}`);
    }
    const source = typeof value["source"] === "string" && value["source"]
      ? value["source"]
      : "control";
    callbacks.setStatus(status as AgentStatus, source.slice(0, 100));
    return json({ ok: true, status });
  };

  const postLogLevel = async (req: Request): Promise<Response> => {
    const { value } = await readObject(req, maxBodyBytes);
    const raw = value["level"];
    const level = typeof raw === "string" ? parseLogLevel(raw) : undefined;
    if (!level) {
      throw new HttpError(400, `Field "level" must be one of: ${LOG_LEVELS.join(", ")}`);
    }
    const previous = setLogLevel(level);
    log.info(`log level set to ${level} (was ${previous}) through the control server`);
    return json({ ok: true, level, previous });
  };

  return [
    ["/status", { GET: () => json(statusBody(callbacks, now())), POST: postStatus }],
    ["/reply-obligations", {
      GET: () =>
        json({
          obligations: callbacks.obligations.get(),
          ...obligationInfo(callbacks.obligations, now()),
        }),
    }],
    ["/log-level", {
      GET: () => json({ level: getLogLevel(), levels: LOG_LEVELS }),
      POST: postLogLevel,
    }],
  ];
}
