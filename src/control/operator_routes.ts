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
import { relayAuthOf } from "./health_routes.ts";
import { type BodyLimits, HttpError, json, optionalTypes, readObject } from "./http.ts";
import type { RouteMethods } from "./routes.ts";

const log = getLogger("control");

/** Epoch milliseconds as ISO-8601, or `null` (also for a time `Date` cannot show). */
export function isoTime(epochMs: number | undefined): string | null {
  if (typeof epochMs !== "number" || !Number.isFinite(epochMs)) return null;
  const date = new Date(epochMs);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

/** How many obligations the snapshot holds, when it was refreshed, and why it last failed. */
function obligationInfo(obligations: ObligationSource, now: number): Record<string, unknown> {
  const refreshedAt = obligations.refreshedAt;
  const info: Record<string, unknown> = {
    count: obligations.get().length,
    refreshedAt: isoTime(refreshedAt),
    ageMs: refreshedAt === undefined ? null : Math.max(0, now - refreshedAt),
  };
  const lastError = obligations.lastError;
  if (lastError !== undefined) info["lastError"] = lastError;
  return info;
}

/**
 * `GET /status`'s body: the runner's snapshot with `startedAt` as ISO-8601, plus `uptimeMs`,
 * `obligations` (its `refreshedAt` ISO-8601 too; ages stay milliseconds) and `relayAuth`.
 */
export function statusBody(callbacks: ControlCallbacks, now: number): Record<string, unknown> {
  const s = callbacks.status();
  return {
    ...s,
    startedAt: isoTime(s.startedAt),
    uptimeMs: Math.max(0, now - s.startedAt),
    obligations: obligationInfo(callbacks.obligations, now),
    relayAuth: relayAuthOf(callbacks),
  };
}

/** Options of {@linkcode operatorRoutes}. */
export interface OperatorRoutesOptions {
  /** Epoch milliseconds now. */
  now: () => number;
  body: BodyLimits;
}

/** The operator endpoints, as `[path, methods]` pairs for the route table. */
export function operatorRoutes(
  callbacks: ControlCallbacks,
  options: OperatorRoutesOptions,
): Array<[string, RouteMethods]> {
  const { now, body } = options;

  const postStatus = async (req: Request): Promise<Response> => {
    const { value } = await readObject(req, body);
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
    const { value } = await readObject(req, body);
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
