/**
 * The Worker's side of the sandbox: waits for the launcher's `start`, runs the command, reports
 * its exit code; relays the launcher's `stop` messages to whoever listens ({@linkcode onStop}).
 *
 * @module
 */
import { errorText } from "../util/mod.ts";
import type { Grants } from "./grants.ts";
import type { FromWorker, StartMessage, ToWorker } from "./worker_protocol.ts";

/** What a command running in the Worker knows of its sandbox. */
export interface WorkerContext {
  runId: string;
  grants: Grants;
  /** `run`'s configuration as the launcher resolved it. */
  config: unknown;
}

let context: WorkerContext | undefined;
const stopListeners = new Set<(signal: string) => void>();
const pendingStops: string[] = [];

/** Whether this code runs in a Worker (not the main thread). */
export function inWorker(): boolean {
  // deno-lint-ignore no-explicit-any
  const scope = (globalThis as any).WorkerGlobalScope;
  return typeof scope === "function" && globalThis instanceof scope;
}

/** The sandbox context, when this code runs in the launcher's Worker. */
export function workerContext(): WorkerContext | undefined {
  return context;
}

/**
 * Calls `listener` for each `stop` the launcher sends (one per signal, the first already sent
 * ones included); returns the function that unsubscribes.
 */
export function onStop(listener: (signal: string) => void): () => void {
  stopListeners.add(listener);
  for (const signal of pendingStops.splice(0)) listener(signal);
  return () => stopListeners.delete(listener);
}

function post(message: FromWorker): void {
  (globalThis as unknown as { postMessage(message: unknown): void }).postMessage(message);
}

/** Serves the launcher: runs `command` with the `start` message's arguments, then reports. */
export function serveWorker(command: (start: StartMessage) => Promise<number>): void {
  const scope = globalThis as unknown as {
    addEventListener(type: "message", listener: (event: MessageEvent<ToWorker>) => void): void;
  };
  scope.addEventListener("message", (event) => {
    const message = event.data;
    if (message.type === "stop") {
      if (stopListeners.size === 0) pendingStops.push(message.signal);
      for (const listener of stopListeners) listener(message.signal);
      return;
    }
    if (message.type !== "start" || context !== undefined) return;
    context = { runId: message.runId, grants: message.grants, config: message.config };
    command(message).then(
      (code) => post({ type: "exit", code }),
      (error) => {
        // deno-lint-ignore no-console
        console.error(`agent-relay-runner: fatal: ${errorText(error)}`);
        post({ type: "exit", code: 1 });
      },
    );
  });
}
