/**
 * Helpers for the relay tests: bounded waits and a log recorder.
 *
 * @module
 */

/**
 * Polls `condition` until it is truthy and returns its value; fails after `timeoutMs`
 * (a bound on a hung test, not a speed assertion).
 */
export async function waitFor<T>(
  condition: () => T | Promise<T>,
  what: string,
  timeoutMs = 8000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const value = await condition();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A logger that keeps what it is told. */
export class RecordingLogger {
  lines: Array<{ level: string; message: string }> = [];
  debug = (message: string) => void this.lines.push({ level: "debug", message });
  info = (message: string) => void this.lines.push({ level: "info", message });
  warn = (message: string) => void this.lines.push({ level: "warn", message });
  error = (message: string) => void this.lines.push({ level: "error", message });
  at(level: string): string[] {
    return this.lines.filter((l) => l.level === level).map((l) => l.message);
  }
}

/** Waits (bounded) until a bus is connected. */
export async function connected(
  bus: { whenConnected(options?: { signal?: AbortSignal }): Promise<void> },
  timeoutMs = 8000,
): Promise<void> {
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new Error("Timed out waiting for the bus to connect")),
    timeoutMs,
  );
  try {
    await bus.whenConnected({ signal: controller.signal });
  } finally {
    clearTimeout(timer);
  }
}
