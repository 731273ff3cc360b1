/**
 * The reference relay's bearer-token checks: `/api/*` takes the root token or an unexpired
 * issued one; `/admin/*` takes only the root token, compared in constant time.
 *
 * @module
 */
import { HttpError } from "./http.ts";
import type { RelayStore } from "./store.ts";

/** A root token: 1 to 512 printable ASCII characters, no spaces. */
export const TOKEN_SHAPE = /^[\x21-\x7e]{1,512}$/;

/** The bearer token of a request, if it has one. */
export function bearer(request: Request): string | undefined {
  const header = request.headers.get("authorization") ?? "";
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

function constantTimeEqual(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

/** The request's valid token, or a 401 saying why there is none. */
export function authorize(store: RelayStore, request: Request): string {
  const token = bearer(request);
  if (!token) throw new HttpError(401, "missing bearer token");
  const { check } = store.checkToken(token);
  if (check === "unknown") throw new HttpError(401, "unknown bearer token");
  if (check === "expired") throw new HttpError(401, "the bearer token expired");
  return token;
}

/** Nothing when the request carries the root token (whatever its expiry), else a 401. */
export function authorizeAdmin(rootToken: string, request: Request): void {
  const token = bearer(request);
  if (!token || !constantTimeEqual(token, rootToken)) {
    throw new HttpError(401, "admin requests need the relay's root token");
  }
}
