/**
 * The control fuzzer's spies: {@linkcode ControlCallbacks} whose every member records its calls,
 * so a run can tell which requests reached the runner, and the secret every fuzz handler uses.
 *
 * @module
 */
import type { ControlCallbacks } from "../../../src/control/mod.ts";
import type { PermissionDecision } from "../../../src/types.ts";

/** The secret every fuzz handler uses: hex with letters, so a case change breaks it. */
export const FUZZ_SECRET = "c0ffee5ecae7b00c4a11ab1e5eedfacec0ffee5ecae7b00c4a11ab1e5eedface";

/** The name of every callback the control server can call. */
export type CallbackName =
  | "status"
  | "setStatus"
  | "obligations.get"
  | "obligations.refreshedAt"
  | "obligations.lastError"
  | "deliveredThisTurn"
  | "decidePermission"
  | "onHook"
  | "onHookFatal"
  | "metrics"
  | "readiness"
  | "relayAuth";

/** The callbacks the open paths (`/health`, `/ready`) may read without the secret. */
export const OPEN_READS: readonly CallbackName[] = ["readiness", "relayAuth"];

/** The callbacks that change something (the rest only read). */
export const ACTIONS: readonly CallbackName[] = [
  "setStatus",
  "decidePermission",
  "onHook",
  "onHookFatal",
];

/** One recorded callback call. */
export interface SpyCall {
  name: CallbackName;
  args: unknown[];
}

/** Callbacks that record every call. */
export interface Spy {
  callbacks: ControlCallbacks;
  calls: SpyCall[];
}

/** Builds {@linkcode ControlCallbacks} whose every member records its calls in `calls`. */
export function createSpy(): Spy {
  const calls: SpyCall[] = [];
  const rec = (name: CallbackName, ...args: unknown[]) => void calls.push({ name, args });
  const callbacks: ControlCallbacks = {
    status() {
      rec("status");
      return {
        agentId: "fuzz",
        provider: "claude",
        status: "busy",
        pid: 4242,
        startedAt: 1_000,
        outbox: { pending: 1, poisoned: 0 },
      };
    },
    setStatus(status, source) {
      rec("setStatus", status, source);
    },
    obligations: {
      get() {
        rec("obligations.get");
        return [{ messageId: 7, from: "boss", createdAt: "2026-01-01T00:00:00.000Z", body: "hi" }];
      },
      get refreshedAt() {
        rec("obligations.refreshedAt");
        return 2_000;
      },
      get lastError() {
        rec("obligations.lastError");
        return undefined;
      },
    },
    deliveredThisTurn() {
      rec("deliveredThisTurn");
      return [];
    },
    decidePermission(request) {
      rec("decidePermission", request);
      return Promise.resolve<PermissionDecision>({ decision: "deny", reason: "fuzz" });
    },
    onHook(event, payload) {
      rec("onHook", event, payload);
      return { fuzzed: true };
    },
    onHookFatal(report) {
      rec("onHookFatal", report);
    },
    metrics() {
      rec("metrics");
      return { outbox: { pending: 1, poisoned: 0, delivered: 3 } };
    },
    readiness() {
      rec("readiness");
      return { ready: true };
    },
    relayAuth() {
      rec("relayAuth");
      return "ok";
    },
  };
  return { callbacks, calls };
}
