/**
 * The reference relay's public shapes: the options of `startDevRelay`, the running relay and
 * its admin side.
 *
 * @module
 */
import type { BusCommand, PermissionDecision } from "../types.ts";
import type { Clock } from "../util/mod.ts";
import type { BusConnection, CommandRecord, CommandResult } from "./bus_hub.ts";
import type { DevRelayFaults, FaultPatch } from "./faults.ts";
import type { DevRelayState } from "./store_types.ts";

/** Options of `startDevRelay`. */
export interface DevRelayOptions {
  /** The port on 127.0.0.1; 0 (the default) picks a free one. */
  port?: number;
  /** The SQLite file; default `:memory:` (nothing kept). */
  dbPath?: string;
  /** The root bearer token. Default `dev`. */
  token?: string;
  /** Aborting closes the relay. */
  signal?: AbortSignal;
  /** Lifetime of renewed tokens, milliseconds. Default one hour. */
  tokenTtlMs?: number;
  /** How long after expiry a token may still renew itself, milliseconds. Default one day. */
  renewGraceMs?: number;
  /** How permission requests are answered. Default deny. */
  permission?: PermissionDecision;
  /** Fault switches to start with. */
  faults?: FaultPatch;
  /** Time and timers (token expiry, the `slowMs` and `downMs` faults). Default the system clock. */
  clock?: Clock;
  /** The time, epoch ms, when it should differ from `clock.now`. */
  now?: () => number;
  /** One readable line per request and bus event (the CLI passes stderr). */
  trace?: (line: string) => void;
}

/** The admin side of a running relay, for tests and operators. */
export interface DevRelayAdmin {
  /** Everything stored. */
  state(): DevRelayState;
  /** The current fault switches. */
  faults(): DevRelayFaults;
  /** Changes fault switches; `down` closes or reopens the listener (same port). */
  setFaults(patch: FaultPatch): Promise<DevRelayFaults>;
  /** Every switch off (and the listener up). */
  clearFaults(): Promise<DevRelayFaults>;
  /** Expires every token now, the root one included (renewal stays possible within the grace). */
  expireTokens(): void;
  /** Closes every bus socket once (the runners reconnect). */
  dropWebSockets(): void;
  /** Issues a token as `POST /api/tokens/renew` would. */
  issueToken(ttlMs?: number): { token: string; expiresAt: string };
  /** The open bus connections. */
  connections(): BusConnection[];
  /** How many bus connections were accepted since start. */
  busConnectionsOpened(): number;
  /** Sends a command to an agent's provider connection and waits for its result. */
  sendCommand(
    agentId: string,
    command: BusCommand,
    options?: { timeoutMs?: number; signal?: AbortSignal },
  ): Promise<CommandResult>;
  /** Commands sent so far, with their results. */
  commands(): CommandRecord[];
  /** Sends an `error` frame to an agent's bus connections (and closes them with `close`). */
  sendError(agentId: string, code: string, message: string, options?: { close?: boolean }): number;
  /** Changes how permission requests are answered. */
  setPermission(decision: PermissionDecision): void;
}

/** A running reference relay. */
export interface DevRelay {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  port: number;
  /** The root token. */
  token: string;
  admin: DevRelayAdmin;
  /** Stops listening, closes every socket and the database. Idempotent. */
  close(): Promise<void>;
}
