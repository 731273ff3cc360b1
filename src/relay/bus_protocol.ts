/**
 * The bus's addressing and error vocabulary: the bus URL for a relay, and what an `error`
 * frame's code asks of the runner (docs/protocol.md).
 *
 * @module
 */

/** What an `error` frame's code asks of the runner. */
export type BusErrorAction = "auth" | "fatal" | "info";

const AUTH_CODES = new Set([
  "unauthorized",
  "forbidden",
  "token_expired",
  "invalid_token",
  "auth",
]);
const FATAL_CODES = new Set(["fatal", "agent_removed", "agent_replaced"]);

/**
 * Classifies an `error` frame's code: `auth` (unauthorized, forbidden, token_expired,
 * invalid_token, auth) -> renew the token and reconnect; `fatal` (fatal, agent_removed,
 * agent_replaced) -> stop; anything else is logged and otherwise ignored.
 */
export function classifyBusError(code: string): BusErrorAction {
  const c = code.trim().toLowerCase();
  if (AUTH_CODES.has(c)) return "auth";
  if (FATAL_CODES.has(c)) return "fatal";
  return "info";
}

/** The bus URL for a relay base URL: `ws(s)://host/api/bus?agentId=ID&role=ROLE`. */
export function busUrl(baseUrl: string, agentId: string, role = "provider"): string {
  const url = new URL(baseUrl);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/api/bus`;
  url.search = new URLSearchParams({ agentId, role }).toString();
  url.hash = "";
  return url.href;
}
