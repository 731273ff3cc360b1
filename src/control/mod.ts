/**
 * The localhost control server: the hook endpoints, status, metrics and the monitor
 * (docs/control-server.md), with the hook contract and the permission policy it applies.
 *
 * @module
 */
export * from "./contract.ts";
export * from "./permission_policy.ts";
export * from "./stop_decision.ts";
export type {
  ControlCallbacks,
  HookContext,
  HookFatalReport,
  MetricSample,
  MetricsSnapshot,
  ObligationSource,
  Readiness,
  RelayAuth,
  StatusSnapshot,
} from "./callbacks.ts";
export { type ControlHandler, type ControlOptions, createControlHandler } from "./handler.ts";
export { claudePermissionAnswer } from "./hook_routes.ts";
export type { MonitorEvent } from "./monitor.ts";
export { constantTimeEqual, generateSecret } from "./secret.ts";
export { type ControlServer, type ControlServerOptions, startControlServer } from "./server.ts";
