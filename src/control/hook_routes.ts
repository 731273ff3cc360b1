/**
 * The hook endpoints: `POST /hooks/<event>` for every {@linkcode HOOK_EVENTS} entry, and
 * `POST /hook-fatal` for a hook that failed in a way it could not handle itself.
 *
 * The server owns the two answers the contract fixes:
 *
 * - `stop` decides from the local reply-obligation snapshot with {@linkcode decideStop}, never
 *   from the relay;
 * - `permission-request` answers through the permission decider, within the budget (deny after).
 *
 * Every hook is then handed to `onHook` for the runner's bookkeeping, which is waited on for at
 * most the budget; for the other events `onHook`'s return value is the answer. Each hook's
 * status and latency go to {@linkcode ControlStats} and, while clients watch, to the monitor.
 *
 * @module
 */
import { getLogger, redact } from "../logger.ts";
import type { PermissionDecision, PermissionRequest, ProviderName } from "../types.ts";
import { type Clock, errorText } from "../util/mod.ts";
import type { ControlCallbacks, HookContext } from "./callbacks.ts";
import { HOOK_EVENTS, type HookAnswer, type HookEvent, type HookPayload } from "./contract.ts";
import { type BodyLimits, HttpError, isObject, json, optionalTypes, readObject } from "./http.ts";
import type { ControlStats } from "./metrics.ts";
import type { Monitor } from "./monitor.ts";
import type { RouteMethods } from "./routes.ts";
import { decideStop } from "./stop_decision.ts";

const log = getLogger("control");

/** The payload fields every hook may carry, with their types. */
const COMMON_FIELDS = {
  session_id: "string",
  transcript_path: "string",
  cwd: "string",
  hook_event_name: "string",
} as const;

/** Claude Code's answer to a PermissionRequest hook. */
export function claudePermissionAnswer(decision: PermissionDecision): HookAnswer {
  return {
    hookSpecificOutput: {
      hookEventName: "PermissionRequest",
      decision: decision.decision === "allow"
        ? { behavior: "allow" }
        : { behavior: "deny", message: decision.reason ?? "denied by the runner" },
    },
  };
}

/** Options of {@linkcode hookRoutes}. */
export interface HookRoutesOptions {
  stats: ControlStats;
  monitor: Monitor;
  clock: Clock;
  /** How long a hook waits on `onHook` and `decidePermission`. */
  budgetMs: number;
  body: BodyLimits;
  /**
   * The run's provider: named in permission requests, and deciding whether the hook endpoints
   * answer at all (only a provider that uses hooks, see {@linkcode usesHooks}; 409 otherwise).
   */
  provider: ProviderName;
}

/** Whether `provider` reports through the hook endpoints (only Claude Code does). */
export function usesHooks(provider: ProviderName): boolean {
  return provider === "claude";
}

/** The hook endpoints, as `[path, methods]` pairs for the route table. */
export function hookRoutes(
  callbacks: ControlCallbacks,
  options: HookRoutesOptions,
): Array<[string, RouteMethods]> {
  const { stats, monitor, clock, budgetMs: budget, body, provider } = options;
  const hooksServed = usesHooks(provider);

  /** Resolves `value`, or `fallback()` after the budget; never waits longer. */
  const within = <T>(value: T | Promise<T>, fallback: () => T): T | Promise<T> => {
    if (!(value instanceof Promise)) return value;
    let timer: unknown;
    return Promise.race([
      value,
      new Promise<T>((resolve) => {
        timer = clock.setTimeout(() => resolve(fallback()), budget);
      }),
    ]).finally(() => clock.clearTimeout(timer));
  };

  const runOnHook = (
    event: HookEvent,
    payload: HookPayload,
    context: HookContext,
  ): HookAnswer | void | Promise<HookAnswer | void> => {
    if (!callbacks.onHook) return undefined;
    return within(callbacks.onHook(event, payload, context), () => {
      log.warn(
        `the runner took over ${budget} ms to handle the ${event} hook; answered without it`,
      );
      return undefined;
    });
  };

  /** Runs `onHook` for a hook whose answer is already decided: a failure is only logged. */
  const tellRunner = async (event: HookEvent, payload: HookPayload, context: HookContext) => {
    try {
      await runOnHook(event, payload, context);
    } catch (error) {
      log.error(`the runner failed to handle the ${event} hook: ${errorText(error)}`);
    }
  };

  const stop = async (payload: HookPayload, raw: string): Promise<HookAnswer> => {
    optionalTypes(payload, { stop_hook_active: "boolean" });
    const decision = decideStop(callbacks.obligations.get(), {
      deliveredThisTurn: callbacks.deliveredThisTurn(),
      stopHookActive: payload["stop_hook_active"] === true,
    });
    if (decision.blocked) {
      stats.stopBlocks++;
      log.info(
        `stop blocked: ${decision.outstanding.length} relay message(s) still owed ` +
          `(${decision.outstanding.map((o) => o.messageId).join(", ")})`,
      );
    }
    await tellRunner("stop", payload, { raw, stop: decision });
    return decision.answer;
  };

  const permission = async (payload: HookPayload, raw: string): Promise<HookAnswer> => {
    optionalTypes(payload, { tool_name: "string", tool_use_id: "string" });
    const toolUseId = payload["tool_use_id"];
    const toolName = payload["tool_name"];
    const request: PermissionRequest = {
      requestId: typeof toolUseId === "string" && toolUseId ? toolUseId : crypto.randomUUID(),
      provider,
      tool: typeof toolName === "string" && toolName ? toolName : "unknown",
      input: payload["tool_input"] ?? null,
    };
    let decision: PermissionDecision;
    try {
      decision = await within(
        // Not req.signal: Deno.serve aborts it on every finished response (and warns about it);
        // the decider's own budget bounds the wait.
        callbacks.decidePermission(request),
        () => ({ decision: "deny", reason: `no decision within ${budget} ms` }),
      );
    } catch (error) {
      decision = { decision: "deny", reason: `the permission decider failed: ${errorText(error)}` };
    }
    log.info(`permission for ${request.tool} (${request.requestId}): ${decision.decision}`);
    await tellRunner("permission-request", payload, { raw, permission: { request, decision } });
    return claudePermissionAnswer(decision);
  };

  const answer = async (event: HookEvent, req: Request): Promise<HookAnswer> => {
    if (!hooksServed) {
      // Nothing read, nothing done: a stop here must not pull queued messages into a turn.
      throw new HttpError(
        409,
        `The ${provider} provider does not use hooks; POST /hooks/${event} is not served`,
      );
    }
    const { raw, value } = await readObject(req, body);
    optionalTypes(value, COMMON_FIELDS);
    if (event === "stop") return await stop(value, raw);
    if (event === "permission-request") return await permission(value, raw);
    const result = await runOnHook(event, value, { raw });
    return isObject(result) ? result : {};
  };

  const hook = async (event: HookEvent, req: Request): Promise<Response> => {
    const started = performance.now();
    let status = 200;
    try {
      return json(await answer(event, req));
    } catch (error) {
      if (error instanceof HttpError) {
        status = error.status;
        return json({ error: error.message }, error.status);
      }
      status = 500;
      log.error(`the ${event} hook failed in the runner: ${errorText(error)}`);
      return json({
        error: `The runner failed to handle the ${event} hook: ${errorText(error)}`,
      }, 500);
    } finally {
      const seconds = (performance.now() - started) / 1000;
      stats.recordHook(event, status, seconds);
      if (log.enabled("debug")) {
        log.debug(`hook ${event} answered ${status} in ${(seconds * 1000).toFixed(2)} ms`);
      }
      if (monitor.clients > 0) monitor.publish({ type: "hook", event, status, ms: seconds * 1000 });
    }
  };

  const hookFatal = async (req: Request): Promise<Response> => {
    const { value } = await readObject(req, body);
    optionalTypes(value, { hook: "string", error: "string" });
    // A failing hook may echo its own command line, secret included: the report is redacted
    // before it is logged, queued for the relay or published (the secret never leaves).
    const rawHook = typeof value["hook"] === "string" ? redact(value["hook"]).trim() : "";
    const hookName = (rawHook || "unknown").slice(0, 100);
    const rawError = typeof value["error"] === "string" ? redact(value["error"]) : "";
    const detail = (rawError || "(no detail)").slice(0, 4000);
    stats.hookFatals++;
    log.fatal(`hook ${hookName} failed: ${detail}`);
    let stored: void | boolean = false;
    try {
      stored = await callbacks.onHookFatal?.({ hook: hookName, error: detail });
    } catch (error) {
      log.error(`queueing the hook_fatal report failed: ${errorText(error)}`);
    }
    monitor.publish({ type: "hook-fatal", hook: hookName, error: detail });
    if (stored === false) {
      return json({ error: "The report could not be stored durably: try again" }, 503);
    }
    return json({ ok: true });
  };

  const events = Object.keys(HOOK_EVENTS) as HookEvent[];
  return [
    ...events.map((event): [string, RouteMethods] => [
      `/hooks/${event}`,
      { POST: (req) => hook(event, req) },
    ]),
    ["/hook-fatal", { POST: hookFatal }],
  ];
}
