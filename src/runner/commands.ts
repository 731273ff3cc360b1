/**
 * The relay's bus commands to this runner: `interrupt`, `restart`, `exit` and `set-log-level`.
 * Each answers the relay with a result, or throws (the bus reports the error back).
 *
 * @module
 */
import { getLogger, parseLogLevel, setLogLevel } from "../logger.ts";

const log = getLogger("runner");

/** A command frame's `command` object. */
export type BusCommandFrame = { type: string; [key: string]: unknown };

/** What the commands act on. */
export interface CommandTargets {
  /** Interrupts the current turn. */
  interrupt(): Promise<void>;
  /** Restarts the provider. */
  restart(): Promise<void>;
  /** Leaves the relay and stops, once the outbox is flushed. */
  exit(): void;
}

/** Runs one bus command; returns its result. */
export async function runCommand(
  command: BusCommandFrame,
  targets: CommandTargets,
): Promise<unknown> {
  switch (command.type) {
    case "interrupt":
      await targets.interrupt();
      return { interrupted: true };
    case "restart":
      log.info("restart requested over the bus");
      await targets.restart();
      return { restarted: true };
    case "exit":
      log.info("exit requested over the bus: leaving the relay once the outbox is flushed");
      targets.exit();
      return { exiting: true };
    case "set-log-level": {
      const raw = command["level"];
      const level = parseLogLevel(typeof raw === "string" ? raw : undefined);
      if (!level) throw new Error(`Level ${JSON.stringify(raw)} is not a log level`);
      return { level, previous: setLogLevel(level) };
    }
    default:
      throw new Error(`Unknown command ${JSON.stringify(command.type)}`);
  }
}
