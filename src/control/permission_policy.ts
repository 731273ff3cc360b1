/**
 * Answers tool-permission questions by the configured policy, always within the hook's budget.
 *
 * `allow` and `deny` answer at once. `ask-relay` asks the relay (`POST
 * /api/agents/:id/permission-requests`, through the injected `ask`) and waits at most
 * `budgetMs` (default 1,500 ms, below the hook's 2 s curl limit); a timeout, an error or an answer
 * that is neither allow nor deny falls back to deny. The decider never rejects and never hangs,
 * even when `ask` ignores its abort signal. Claude's PermissionRequest hook and Codex's approval
 * requests share it.
 *
 * @module
 */
import { getLogger } from "../logger.ts";
import {
  PERMISSION_POLICIES,
  type PermissionDecision,
  type PermissionPolicy,
  type PermissionRequest,
} from "../types.ts";

const log = getLogger("permission");

/** Asks the relay for a decision; must honour `signal`. */
export type PermissionAsk = (
  request: PermissionRequest,
  options: { signal: AbortSignal },
) => Promise<PermissionDecision>;

/** Answers a permission request. Never rejects; resolves within the budget. */
export type PermissionDecider = (
  request: PermissionRequest,
  options?: { signal?: AbortSignal },
) => Promise<PermissionDecision>;

/** Options of {@linkcode createPermissionDecider}. */
export interface PermissionDeciderOptions {
  policy: PermissionPolicy;
  /** Required for `ask-relay`. */
  ask?: PermissionAsk;
  /** How long `ask-relay` waits for the relay. Default 1,500 ms; must stay below 2,000 ms. */
  budgetMs?: number;
  /** Default: the global timers. */
  setTimeout?: (callback: () => void, ms: number) => unknown;
  clearTimeout?: (id: unknown) => void;
}

/** The default wait for the relay's answer. */
export const DEFAULT_PERMISSION_BUDGET_MS = 1_500;
/** The hook's own curl limit (`--max-time 2`); the budget must stay below it. */
export const HOOK_CURL_BUDGET_MS = 2_000;

function isDecision(value: unknown): value is PermissionDecision {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return (v["decision"] === "allow" || v["decision"] === "deny") &&
    (v["reason"] === undefined || typeof v["reason"] === "string");
}

/** Builds the permission decider for a policy. Throws on a bad policy, budget or missing `ask`. */
export function createPermissionDecider(options: PermissionDeciderOptions): PermissionDecider {
  const { policy } = options;
  if (!(PERMISSION_POLICIES as readonly string[]).includes(policy)) {
    throw new TypeError(
      `Permission policy "${policy}" is not one of: ${PERMISSION_POLICIES.join(", ")}`,
    );
  }
  const budgetMs = options.budgetMs ?? DEFAULT_PERMISSION_BUDGET_MS;
  if (!Number.isFinite(budgetMs) || budgetMs <= 0 || budgetMs >= HOOK_CURL_BUDGET_MS) {
    throw new RangeError(
      `Permission budget ${budgetMs} ms must be above 0 and below the hook's ` +
        `${HOOK_CURL_BUDGET_MS} ms curl limit`,
    );
  }
  if (policy === "allow") {
    return () => Promise.resolve({ decision: "allow", reason: "the runner's policy is allow" });
  }
  if (policy === "deny") {
    return () => Promise.resolve({ decision: "deny", reason: "the runner's policy is deny" });
  }
  const ask = options.ask;
  if (!ask) throw new TypeError('Permission policy "ask-relay" needs an ask function');
  const startTimer = options.setTimeout ?? ((cb: () => void, ms: number) => setTimeout(cb, ms));
  const stopTimer = options.clearTimeout ??
    ((id: unknown) => clearTimeout(id as ReturnType<typeof setTimeout>));

  return async (request, callOptions) => {
    const abort = new AbortController();
    const outer = callOptions?.signal;
    const onOuterAbort = () => abort.abort(new Error("the hook's request was cancelled"));
    if (outer?.aborted) onOuterAbort();
    else outer?.addEventListener("abort", onOuterAbort, { once: true });
    let timer: unknown;
    let settled = false;
    const fallback = new Promise<PermissionDecision>((resolve) => {
      const deny = (reason: string) => {
        if (settled) return;
        log.warn(`permission for ${request.tool} (${request.requestId}) denied: ${reason}`);
        resolve({ decision: "deny", reason });
      };
      abort.signal.addEventListener(
        "abort",
        () => deny("the request was cancelled before the relay answered"),
        { once: true },
      );
      timer = startTimer(() => {
        deny(`the relay did not answer within ${budgetMs} ms`);
        settled = true;
        abort.abort(new Error(`no answer within ${budgetMs} ms`));
      }, budgetMs);
    });
    const asked = (async (): Promise<PermissionDecision> => {
      try {
        const answer: unknown = await ask(request, { signal: abort.signal });
        if (isDecision(answer)) return answer;
        const reason = `the relay's answer ${JSON.stringify(answer)} is neither allow nor deny`;
        log.warn(`permission for ${request.tool} (${request.requestId}) denied: ${reason}`);
        return { decision: "deny", reason };
      } catch (error) {
        const reason = `asking the relay failed: ${
          error instanceof Error ? error.message : String(error)
        }`;
        if (!settled && !abort.signal.aborted) {
          log.warn(`permission for ${request.tool} (${request.requestId}) denied: ${reason}`);
        }
        return { decision: "deny", reason };
      }
    })();
    try {
      return await Promise.race([asked, fallback]);
    } finally {
      settled = true;
      if (timer !== undefined) stopTimer(timer);
      outer?.removeEventListener("abort", onOuterAbort);
      if (!abort.signal.aborted) abort.abort(new Error("the permission request is settled"));
    }
  };
}
