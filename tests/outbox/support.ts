/**
 * What the outbox tests share: a fake clock that the pump can be driven with, temp dirs, an
 * outbox opener with test defaults, sends, a deferred, and captured log lines.
 *
 * @module
 */
import { join } from "node:path";
import { configureLogging, type LogEntry, onLogEntry } from "../../src/logger.ts";
import { Outbox, type OutboxOptions, type OutboxSend } from "../../src/outbox/mod.ts";
import type { Clock, TimerId } from "../../src/util/mod.ts";
import { FakeClock } from "../support/fake_clock.ts";

export const HOUR = 3_600_000;

/** Lets pending promise callbacks and microtasks run (a few real macrotask turns). */
async function settle(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}

/** Lets chains of already-settled promises run, without waiting for real time. */
async function microtasks(rounds = 100): Promise<void> {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
}

/**
 * The shared {@linkcode FakeClock}, plus what the pump tests need of it: the delay of every
 * timer armed, and {@linkcode advance}, which lets the pump react to each timer before the
 * next one is due (a retry arms the next retry only once its send has failed).
 */
export class TestClock implements Clock {
  /** Every delay passed to setTimeout, in order. */
  readonly delays: number[] = [];
  readonly #fake = new FakeClock();
  /** When each armed timer is due (FakeClock does not tell). */
  readonly #due = new Map<TimerId, number>();

  now(): number {
    return this.#fake.now();
  }

  setTimeout(callback: () => void, delayMs: number): TimerId {
    const id = this.#fake.setTimeout(() => {
      this.#due.delete(id);
      callback();
    }, delayMs);
    this.#due.set(id, this.now() + Math.max(0, delayMs));
    this.delays.push(delayMs);
    return id;
  }

  clearTimeout(id: TimerId | undefined): void {
    this.#due.delete(id);
    this.#fake.clearTimeout(id);
  }

  /** How many timers are armed. */
  get armed(): number {
    return this.#fake.pending;
  }

  /** Moves time forward by `ms` at once, running the timers due. */
  tick(ms: number): void {
    this.#fake.tick(ms);
  }

  /** Moves time forward by `ms`, one due timer at a time, letting the pump react to each. */
  async advance(ms: number): Promise<void> {
    const end = this.now() + ms;
    await settle(1);
    for (;;) {
      await microtasks();
      const next = Math.min(...this.#due.values());
      if (!(next <= end)) break;
      this.#fake.tick(Math.max(0, next - this.now()));
    }
    this.#fake.tick(end - this.now());
    await settle();
  }
}

/** A promise with its resolve and reject. */
export function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Runs `fn` with a fresh temp dir, removed afterwards. */
export async function withDir(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "outbox_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Opens `dir`/outbox.sqlite for agent-1 on `clock`, with an hour-long backstop poll. */
export function open(dir: string, clock: TestClock, options: Partial<OutboxOptions> = {}): Outbox {
  return new Outbox({
    path: join(dir, "outbox.sqlite"),
    agentId: "agent-1",
    clock,
    pollMs: HOUR,
    ...options,
  });
}

/** A send that delivers everything. */
export const okAll: OutboxSend = (records) =>
  Promise.resolve(records.map(() => ({ ok: true as const })));

/** An error the default classifier calls transient. */
export function transientError(message = "relay down"): Error {
  return Object.assign(new Error(message), { permanent: false });
}

/** Runs `fn` with the outbox's log lines (debug and up) collected into `entries`. */
export async function withLogs(fn: (entries: LogEntry[]) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "outbox_log_" });
  const handle = configureLogging({ logDir: dir, agentId: "t", level: "debug" });
  const entries: LogEntry[] = [];
  const off = onLogEntry((e) => {
    if (e.component === "outbox") entries.push(e);
  });
  try {
    await fn(entries);
  } finally {
    off();
    handle.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** The size of a file, 0 when absent. */
export function fileSize(path: string): number {
  try {
    return Deno.statSync(path).size;
  } catch {
    return 0;
  }
}

/** Resolves at the next change of `reason` (subscribe before causing it). */
export function nextChange(outbox: Outbox, reason: string): Promise<void> {
  return new Promise((resolve) => {
    const off = outbox.onChange((change) => {
      if (change.reason !== reason) return;
      off();
      resolve();
    });
  });
}
