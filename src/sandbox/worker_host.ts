/**
 * The launcher's side of the sandbox: starts the Worker with exactly the command's permissions,
 * relays signals to it as messages, and returns its exit code. The launcher reads no untrusted
 * input: the relay, the hooks and the provider are only ever read inside the Worker.
 *
 * Signals (docs/contracts.md): the first SIGTERM, SIGINT or SIGHUP asks the command to stop
 * gracefully; another one half a second or more later exits at once (a terminal's Ctrl-C reaches
 * both `deno task` and the launcher, which may pass it on: within that half second it counts as
 * the same one).
 *
 * @module
 */
import { errorText } from "../util/mod.ts";
import { type SandboxPermissions, workerPermissions } from "./grants.ts";
import type { FromWorker, StartMessage, ToWorker } from "./worker_protocol.ts";

/** The signals that stop a command gracefully. */
export const STOP_SIGNALS: readonly Deno.Signal[] = ["SIGTERM", "SIGINT", "SIGHUP"];

/** Options of {@linkcode runInWorker}. */
export interface WorkerRunOptions {
  /** Relay SIGTERM, SIGINT and SIGHUP to the command as `stop` messages (for `run`). */
  relaySignals?: boolean;
  /** Called on a second signal, before the immediate exit (ends the run's processes). */
  onImmediateExit?: (signal: Deno.Signal) => Promise<void>;
  /** Prints one line on stderr (default: `console.error`). */
  report?: (line: string) => void;
  /**
   * Work that must finish before the command starts, done while the Worker loads its modules:
   * the command is started once it resolves `undefined`; a number ends the run with that exit
   * code before the command starts.
   */
  before?: () => Promise<number | undefined>;
}

const defaultReport = (line: string) => {
  // deno-lint-ignore no-console
  console.error(line);
};

/** Runs `start` in a Worker of module `url` holding `permissions`; resolves with its exit code. */
export function runInWorker(
  url: URL,
  permissions: SandboxPermissions,
  start: StartMessage,
  options: WorkerRunOptions = {},
): Promise<number> {
  const report = options.report ?? defaultReport;
  const worker = new Worker(url, {
    type: "module",
    name: `agent-relay-runner ${start.args[0] ?? ""}`.trim(),
    deno: { permissions: workerPermissions(permissions) },
  });
  const { promise, resolve } = Promise.withResolvers<number>();
  let finished = false;
  const finish = (code: number) => {
    if (finished) return;
    finished = true;
    for (const [signal, listener] of listeners) Deno.removeSignalListener(signal, listener);
    worker.terminate();
    resolve(code);
  };
  worker.onmessage = (event: MessageEvent<FromWorker>) => {
    if (event.data?.type === "exit") finish(event.data.code);
  };
  worker.onerror = (event) => {
    event.preventDefault();
    report(`agent-relay-runner: fatal: ${event.message ?? errorText(event.error)}`);
    finish(1);
  };
  worker.onmessageerror = () => {
    report("agent-relay-runner: fatal: the sandboxed command sent a message that cannot be read");
    finish(1);
  };

  let firstSignalAt: number | undefined;
  let exiting = false;
  const onSignal = (signal: Deno.Signal) => () => {
    const now = Date.now();
    if (firstSignalAt === undefined) {
      firstSignalAt = now;
      worker.postMessage({ type: "stop", signal } satisfies ToWorker);
    } else if (now - firstSignalAt >= 500 && !finished && !exiting) {
      exiting = true;
      const exit = options.onImmediateExit?.(signal) ?? Promise.resolve();
      void exit.catch(() => {}).finally(() => {
        report(`agent-relay-runner: ${signal} received again during the stop: exited at once`);
        finish(1);
      });
    }
  };
  const listeners: Array<[Deno.Signal, () => void]> = options.relaySignals
    ? STOP_SIGNALS.map((signal) => [signal, onSignal(signal)])
    : [];
  for (const [signal, listener] of listeners) Deno.addSignalListener(signal, listener);
  const before = options.before ?? (() => Promise.resolve(undefined));
  before().then(
    (code) => {
      if (code !== undefined) finish(code);
      else if (!finished) worker.postMessage(start satisfies ToWorker);
    },
    (error) => {
      report(`agent-relay-runner: fatal: ${errorText(error)}`);
      finish(1);
    },
  );
  return promise;
}
