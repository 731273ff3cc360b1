/**
 * The reference relay's admin side as an object ({@linkcode DevRelayAdmin}): what tests and
 * operators use to read the state, flip the fault switches and talk to connected runners.
 *
 * @module
 */
import type { BusHub } from "./bus_hub.ts";
import type { RelayStore } from "./store.ts";
import type { Switchboard } from "./switchboard.ts";
import type { DevRelayAdmin } from "./types.ts";

/** Options of {@linkcode createAdmin}. */
export interface AdminOptions {
  store: RelayStore;
  hub: BusHub;
  switches: Switchboard;
  /** Lifetime of issued tokens, milliseconds. */
  tokenTtlMs: number;
  /** One readable line per fault action. */
  trace: (line: string) => void;
}

/** The admin object of one relay. */
export function createAdmin(options: AdminOptions): DevRelayAdmin {
  const { store, hub, switches, trace } = options;
  const isValid = (token: string) => store.checkToken(token).check === "valid";
  return {
    state: () => store.state(),
    faults: () => ({ ...switches.faults }),
    setFaults: (patch) => switches.set(patch),
    clearFaults: () => switches.clear(),
    expireTokens() {
      store.expireAllTokens();
      hub.expireConnections(isValid);
      trace("every token expired (fault)");
    },
    dropWebSockets() {
      hub.dropAll();
      trace("every bus connection dropped (fault)");
    },
    issueToken(ttlMs) {
      const issued = store.issueToken(ttlMs ?? options.tokenTtlMs);
      return { token: issued.token, expiresAt: new Date(issued.expiresAt).toISOString() };
    },
    connections: () => hub.connections(),
    busConnectionsOpened: () => hub.openedCount,
    sendCommand: (agentId, command, opts) => hub.sendCommand(agentId, command, opts ?? {}),
    commands: () => hub.commands(),
    sendError: (agentId, code, message, opts) =>
      hub.sendError(agentId, code, message, opts?.close ?? false),
    setPermission(decision) {
      switches.permission = { ...decision };
    },
  };
}
