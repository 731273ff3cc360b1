/**
 * The reference relay: {@linkcode startDevRelay} and its types.
 *
 * @module
 */
export { startDevRelay } from "./server.ts";
export { MAX_BATCH_ITEMS } from "./api_batch.ts";
export { MAX_BATCH_BODY, MAX_BODY } from "./http.ts";
export type { DevRelay, DevRelayAdmin, DevRelayOptions } from "./types.ts";
export { type DevRelayFaults, type FaultPatch, noFaults } from "./faults.ts";
export type { BusConnection, CommandRecord, CommandResult } from "./bus_hub.ts";
export type {
  DevRelayState,
  StoredHeartbeat,
  StoredInsight,
  StoredObligation,
  StoredPermissionRequest,
  StoredReceipt,
  StoredStatus,
  StoredTaskStatus,
} from "./store_types.ts";
