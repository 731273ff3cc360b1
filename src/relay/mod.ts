/**
 * The relay client: HTTP calls with a bearer token, the WebSocket bus that reconnects by itself,
 * and the heartbeat (docs/protocol.md).
 *
 * @module
 */
export * from "./bus_client.ts";
export * from "./bus_protocol.ts";
export * from "./errors.ts";
export * from "./heartbeat.ts";
export * from "./http_client.ts";
export { parseMessage, toEpochMs, toIso } from "./wire.ts";
