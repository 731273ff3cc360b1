/**
 * The control server's per-run bearer secret: making one, and checking an `Authorization`
 * header against it in constant time (docs/control-server.md, "The secret").
 *
 * @module
 */

/** A fresh control secret: 32 random bytes (256 bits), hex. */
export function generateSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Compares `given` with `expected` in time that depends only on `expected`'s length. */
export function constantTimeEqual(given: string, expected: string): boolean {
  let diff = given.length ^ expected.length;
  for (let i = 0; i < expected.length; i++) {
    diff |= expected.charCodeAt(i) ^ (given.charCodeAt(i) | 0);
  }
  return diff === 0;
}

const BEARER = "bearer ";

/**
 * Whether an `Authorization` header value is `Bearer <secret>`: the scheme in any case, the
 * secret compared in constant time after trimming.
 */
export function bearerMatches(header: string | null, secret: string): boolean {
  if (header === null || header.length <= BEARER.length) return false;
  return header.slice(0, BEARER.length).toLowerCase() === BEARER &&
    constantTimeEqual(header.slice(BEARER.length).trim(), secret);
}
