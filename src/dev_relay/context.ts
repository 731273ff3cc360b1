/**
 * What the reference relay's route handlers share, the shape of a route, and a write's outcome
 * ({@linkcode Applied}) that a single call answers and a batch collects.
 *
 * @module
 */
import type { Message } from "../types.ts";
import type { Clock } from "../util/mod.ts";
import type { BusHub } from "./bus_hub.ts";
import { json } from "./http.ts";
import type { RelayStore } from "./store.ts";
import type { Switchboard } from "./switchboard.ts";
import type { DevRelayAdmin } from "./types.ts";

/** The parts of one running relay. */
export interface RelayContext {
  readonly store: RelayStore;
  readonly hub: BusHub;
  readonly switches: Switchboard;
  readonly admin: DevRelayAdmin;
  readonly clock: Clock;
  /** The time, epoch ms. */
  readonly now: () => number;
  readonly rootToken: string;
  /** Lifetime of renewed tokens, milliseconds. */
  readonly tokenTtlMs: number;
  /** How long after expiry a token may still renew itself, milliseconds. */
  readonly renewGraceMs: number;
  /** Aborted when the relay closes. */
  readonly signal: AbortSignal;
}

/** One request, as a route sees it. */
export interface RouteCall {
  request: Request;
  /** The URL's path. */
  path: string;
  url: URL;
  /** Sets the detail of the request's trace line. */
  note(detail: string): void;
}

/** A route: its answer, or `undefined` when the path is not its own. */
export type Route = (
  ctx: RelayContext,
  call: RouteCall,
) => Response | undefined | Promise<Response | undefined>;

/**
 * What a write did, before it becomes a response: a single route answers it at once, a batch
 * collects its status. `fanOut` is a new message to push on the bus once it is committed.
 */
export interface Applied {
  status: number;
  body: unknown;
  /** The trace line's detail (made only when a single call answers: a batch never needs it). */
  note: () => string;
  fanOut?: Message;
}

/** Answers a single call with what it did: the trace note, the bus push, the JSON. */
export function answer(ctx: RelayContext, call: RouteCall, applied: Applied): Response {
  call.note(applied.note());
  if (applied.fanOut) ctx.hub.fanOut(applied.fanOut);
  return json(applied.status, applied.body);
}
