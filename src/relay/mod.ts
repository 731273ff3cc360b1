/**
 * The relay client: HTTP calls with a bearer token (every answer read through a byte limit),
 * the WebSocket bus that reconnects by itself, the heartbeat and the health probe
 * (docs/protocol.md).
 *
 * @module
 */
export * from "./bus_client.ts";
export * from "./bus_protocol.ts";
export * from "./call_types.ts";
export * from "./errors.ts";
export * from "./heartbeat.ts";
export * from "./http_client.ts";
export { type ProbeOptions, probeRelay } from "./probe.ts";
export { firstMessageHint, HINT_PREFIX_BYTES } from "./bounded_body.ts";
export {
  isMessageId,
  parseMessage,
  parseReceipt,
  type Receipt,
  RECEIPT_STATES,
  type ReceiptState,
  toEpochMs,
  toIso,
} from "./wire.ts";
