/**
 * The turns of a Claude session: which delivered messages Claude has taken in (`consumed`), when
 * a turn runs (busy) and when it ended (idle), the session events of its output (system notes such
 * as a permission denial or a compaction among them), and the
 * watchdog that interrupts, then kills, a Claude that stays silent while busy.
 *
 * @module
 */
import type { SessionEvent } from "./adapter.ts";
import type { Logger } from "../logger.ts";
import { type ClaudeOutput, StreamTranslator } from "./claude_stream.ts";

/** What {@linkcode ClaudeTurns} reports to, and asks of, the adapter. */
export interface ClaudeTurnsOptions {
  /** No output for this long while busy -> interrupt; again -> kill (0 = never). */
  watchdogMs: number;
  emit(event: SessionEvent): void;
  status(status: "busy" | "idle"): void;
  diagnostic(line: string): void;
  /** Whether Claude is ready (status changes wait for that). */
  ready(): boolean;
  /** Whether a Claude process runs (the watchdog arms only then). */
  alive(): boolean;
  /** Asks Claude to abandon the turn. */
  interrupt(): void;
  /** Kills Claude. */
  kill(): void;
  log: Logger;
}

/** Turn bookkeeping for one Claude process at a time ({@linkcode reset} at each launch). */
export class ClaudeTurns {
  readonly #options: ClaudeTurnsOptions;
  #translator = new StreamTranslator();
  /** Delivered, not yet consumed: uuid -> message ids, in delivery order. */
  readonly #unconsumed = new Map<string, number[]>();
  #inTurn = false;
  #watchdog: ReturnType<typeof setTimeout> | undefined;
  #watchdogFired = false;

  constructor(options: ClaudeTurnsOptions) {
    this.#options = options;
  }

  /** Whether a turn runs or a delivery waits to be taken in. */
  get busy(): boolean {
    return this.#unconsumed.size > 0 || this.#inTurn;
  }

  /** Forgets everything (a new process). */
  reset(): void {
    this.clearWatchdog();
    this.#translator = new StreamTranslator();
    this.#unconsumed.clear();
    this.#inTurn = false;
    this.#watchdogFired = false;
  }

  /** Messages `ids` were written to Claude as the user message `uuid`. */
  delivered(uuid: string, ids: number[]): void {
    this.#unconsumed.set(uuid, ids);
    this.#updateStatus();
  }

  /** The user message `uuid` could not be written after all. */
  undeliver(uuid: string): void {
    this.#unconsumed.delete(uuid);
    this.#updateStatus();
  }

  /** A turn began (Claude's `system/init`). */
  turnStarted(): void {
    this.#inTurn = true;
  }

  /** Claude wrote something: a busy Claude is not silent. */
  activity(): void {
    if (this.busy) this.#armWatchdog();
  }

  /** Takes one decoded output line about the conversation. */
  take(output: ClaudeOutput): void {
    switch (output.kind) {
      case "replay":
        this.#consume(output.uuid, "replay");
        this.#inTurn = true;
        return;
      case "lifecycle":
        if (output.state === "started") this.#consume(output.commandUuid, "lifecycle");
        else if (output.state === "cancelled") this.#cancelDelivery(output.commandUuid);
        return;
      case "system":
        this.#onSystem(output.subtype, output.message);
        return;
      case "result":
        this.#emitAll(this.#translator.translate(output));
        this.#inTurn = false;
        this.#watchdogFired = false;
        this.#updateStatus();
        return;
      default:
        this.#emitAll(this.#translator.translate(output));
    }
  }

  /** Claude exited: returns the ids never consumed, and forgets the turn. */
  dropAll(): number[] {
    this.clearWatchdog();
    const unconsumed = [...this.#unconsumed.values()].flat();
    this.#unconsumed.clear();
    this.#inTurn = false;
    return unconsumed;
  }

  clearWatchdog(): void {
    if (this.#watchdog !== undefined) clearTimeout(this.#watchdog);
    this.#watchdog = undefined;
  }

  #consume(uuid: string | undefined, how: string): void {
    let key = uuid !== undefined && this.#unconsumed.has(uuid) ? uuid : undefined;
    if (key === undefined && how === "replay" && uuid === undefined) {
      key = this.#unconsumed.keys().next().value; // no uuid echoed: oldest first
    }
    if (key === undefined) return;
    const ids = this.#unconsumed.get(key) ?? [];
    this.#unconsumed.delete(key);
    this.#inTurn = true; // taken in: its turn runs until the next result
    this.#options.emit({ type: "consumed", messageIds: ids });
  }

  #onSystem(subtype: string, message: Record<string, unknown>): void {
    if (subtype === "permission_denied") {
      const tool = typeof message.tool_name === "string" ? message.tool_name : undefined;
      const text = typeof message.message === "string" ? message.message : "permission denied";
      this.#options.emit({
        type: "step",
        kind: "permission_denied",
        text,
        ...(tool ? { tool } : {}),
      });
      return;
    }
    if (subtype === "compact_boundary") {
      this.#options.emit({ type: "step", kind: "compact", text: "conversation compacted" });
      return;
    }
    this.#options.log.debug(`Claude system message ${subtype}`);
  }

  #cancelDelivery(uuid: string): void {
    const ids = this.#unconsumed.get(uuid);
    if (!ids) return;
    this.#unconsumed.delete(uuid);
    this.#options.diagnostic(
      `Claude cancelled delivery ${uuid} before taking in messages ${ids.join(", ")}`,
    );
    this.#updateStatus();
  }

  #updateStatus(): void {
    if (!this.#options.ready()) return;
    if (this.busy) {
      this.#options.status("busy");
      if (this.#watchdog === undefined) this.#armWatchdog();
    } else {
      this.#options.status("idle");
      this.clearWatchdog();
    }
  }

  #emitAll(events: SessionEvent[]): void {
    for (const event of events) this.#options.emit(event);
  }

  #armWatchdog(): void {
    this.clearWatchdog();
    const ms = this.#options.watchdogMs;
    if (ms <= 0 || !this.#options.alive()) return;
    this.#watchdog = setTimeout(() => {
      this.#watchdog = undefined;
      this.#onWatchdog();
    }, ms);
  }

  #onWatchdog(): void {
    if (!this.#options.alive() || !this.busy) return;
    const ms = this.#options.watchdogMs;
    if (this.#watchdogFired) {
      this.#options.diagnostic(`no output from Claude for ${ms} ms after an interrupt; killing it`);
      this.#options.kill();
      return;
    }
    this.#watchdogFired = true;
    this.#options.diagnostic(`no output from Claude for ${ms} ms while busy; interrupting`);
    this.#armWatchdog();
    this.#options.interrupt();
  }
}
