/**
 * The cheap "is the relay back?" check: `GET /health`, no token, no body read. Any HTTP answer
 * counts (a relay that answers 401 or 503 is listening again); only a connection error or the
 * timeout count as down.
 *
 * @module
 */
import { type Clock, systemClock } from "../util/mod.ts";

/** Options of {@linkcode probeRelay}. */
export interface ProbeOptions {
  /** Give up after this long, milliseconds. Default 1000. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** What {@linkcode probeRelay} needs besides the options. */
export interface ProbeTransport {
  fetch: typeof fetch;
  clock?: Clock;
}

/** Resolves true when the relay at `baseUrl` answers `GET /health` at all, false otherwise. */
export async function probeRelay(
  baseUrl: string,
  transport: ProbeTransport,
  options: ProbeOptions = {},
): Promise<boolean> {
  if (options.signal?.aborted) return false;
  const clock = transport.clock ?? systemClock;
  const timeout = new AbortController();
  const timer = clock.setTimeout(() => timeout.abort(), options.timeoutMs ?? 1000);
  const signal = options.signal
    ? AbortSignal.any([options.signal, timeout.signal])
    : timeout.signal;
  try {
    const response = await transport.fetch(`${baseUrl}/health`, {
      method: "GET",
      headers: { accept: "application/json" },
      signal,
    });
    await response.body?.cancel().catch(() => {});
    return true;
  } catch {
    return false;
  } finally {
    clock.clearTimeout(timer);
  }
}
