/**
 * The outbox's options: what a caller may pass to `new Outbox(...)`, their defaults, and their
 * validation into the settings the parts of the outbox share.
 *
 * @module
 */
import {
  type BackoffOptions,
  checkBackoff,
  type Clock,
  DEFAULT_BACKOFF,
  systemClock,
} from "../util/mod.ts";
import type { Durability } from "./database.ts";
import { DEFAULT_HOLD_BYTES, DEFAULT_HOLD_EVENTS } from "./held.ts";
import { defaultClassify, type FailureClass, type OutboxSend } from "./send.ts";

/** Options of `Outbox`. */
export interface OutboxOptions {
  /** The SQLite file (see `outboxPath()`); its directory is created. */
  path: string;
  /** The agent, used in idempotency keys. */
  agentId: string;
  /** The transport. Optional for inspection and maintenance; required by `start()`. */
  send?: OutboxSend;
  /** Most records per send. Default 1,000 (what one relay batch call takes). */
  batchSize?: number;
  /**
   * Most payload bytes per send (JSON text; a larger single event still goes alone). Default
   * 1 MiB.
   */
  batchBytes?: number;
  /** Most events kept (pending not in flight, plus poisoned). Default 50,000. */
  maxRows?: number;
  /**
   * While another connection holds the file's lock: most events (default 10,000) and bytes
   * (default 16 MiB) held in memory; beyond that `enqueue` throws `OutboxHoldFullError`.
   */
  hold?: { maxEvents?: number; maxBytes?: number };
  /** Retry backoff. Default 1 s doubling to 60 s, jittered in [step/2, step]. */
  backoff?: Partial<BackoffOptions>;
  /** The backstop poll while started, in ms. Default 5,000. */
  pollMs?: number;
  /**
   * `normal` (default): SQLite `synchronous=NORMAL`; a committed event survives a process
   * crash. `full`: `synchronous=FULL`; it also survives power loss, at an fsync per enqueue.
   */
  durability?: Durability;
  /** Classifies a thrown send error, or a failed result without `permanent`. */
  classify?: (error: unknown) => FailureClass;
  /** Time and timers. Default the system clock. */
  clock?: Clock;
  /** Jitter source, in [0, 1). */
  random?: () => number;
}

/** The options with their defaults, checked. */
export interface OutboxSettings {
  path: string;
  agentId: string;
  send: OutboxSend | undefined;
  batchSize: number;
  batchBytes: number;
  maxRows: number;
  hold: { maxEvents: number; maxBytes: number };
  backoff: BackoffOptions;
  pollMs: number;
  durability: Durability;
  classify: (error: unknown) => FailureClass;
  clock: Clock;
  random: () => number;
}

const DEFAULT_BATCH = 1_000;
const DEFAULT_BATCH_BYTES = 1024 * 1024;
const DEFAULT_MAX_ROWS = 50_000;
const DEFAULT_POLL_MS = 5_000;

/** `value`, or `fallback` when absent; throws a `RangeError` naming `name` unless a whole number >= 1. */
export function positiveInt(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`${name} ${value} must be a whole number >= 1`);
  }
  return value;
}

/** Checks `options` and fills in the defaults; throws a `TypeError` or `RangeError` naming the bad value. */
export function resolveOptions(options: OutboxOptions): OutboxSettings {
  if (typeof options.path !== "string" || options.path === "" || options.path === ":memory:") {
    throw new TypeError(`Outbox path "${options.path}" must be a file path`);
  }
  if (typeof options.agentId !== "string" || options.agentId.trim() === "") {
    throw new TypeError(`Outbox agentId "${options.agentId}" must be a non-empty string`);
  }
  const settings: Omit<OutboxSettings, "durability"> = {
    path: options.path,
    agentId: options.agentId,
    send: options.send,
    batchSize: positiveInt(options.batchSize, DEFAULT_BATCH, "batchSize"),
    batchBytes: positiveInt(options.batchBytes, DEFAULT_BATCH_BYTES, "batchBytes"),
    maxRows: positiveInt(options.maxRows, DEFAULT_MAX_ROWS, "maxRows"),
    hold: {
      maxEvents: positiveInt(options.hold?.maxEvents, DEFAULT_HOLD_EVENTS, "hold.maxEvents"),
      maxBytes: positiveInt(options.hold?.maxBytes, DEFAULT_HOLD_BYTES, "hold.maxBytes"),
    },
    pollMs: positiveInt(options.pollMs, DEFAULT_POLL_MS, "pollMs"),
    backoff: checkBackoff({ ...DEFAULT_BACKOFF, ...options.backoff }),
    classify: options.classify ?? defaultClassify,
    clock: options.clock ?? systemClock,
    random: options.random ?? Math.random,
  };
  const durability = options.durability ?? "normal";
  if (durability !== "normal" && durability !== "full") {
    throw new TypeError(`durability "${durability}" must be "normal" or "full"`);
  }
  return { ...settings, durability };
}
