/**
 * The localhost control server: the hook endpoints, status, metrics and the monitor
 * (docs/control-server.md), with the hook contract and the permission policy it applies.
 *
 * @module
 */
export * from "./contract.ts";
export * from "./permission_policy.ts";
export * from "./server.ts";
export * from "./stop_decision.ts";
