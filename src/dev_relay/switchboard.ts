/**
 * The reference relay's live switches: the fault switches, how permission requests are
 * answered, and the listener going down (the `down` fault) and coming back.
 *
 * @module
 */
import { getLogger } from "../logger.ts";
import type { PermissionDecision } from "../types.ts";
import { type Clock, errorText, type TimerId } from "../util/mod.ts";
import type { BusHub } from "./bus_hub.ts";
import { type DevRelayFaults, type FaultPatch, noFaults } from "./faults.ts";
import type { Listener } from "./listener.ts";

const log = getLogger("dev-relay");

/** Options of {@linkcode Switchboard}. */
export interface SwitchboardOptions {
  listener: Listener;
  hub: BusHub;
  clock: Clock;
  /** Fault switches to start with (`down` is applied by the first `set`). */
  faults?: FaultPatch;
  /** How permission requests are answered. Default deny. */
  permission?: PermissionDecision;
  /** One readable line per change. */
  trace: (line: string) => void;
}

/** The switches of one relay. */
export class Switchboard {
  /** The live fault switches: the request gate counts `failCount` down in place. */
  faults: DevRelayFaults;
  /** How permission requests are answered now. */
  permission: PermissionDecision;
  #o: SwitchboardOptions;
  #closed = false;
  #downTimer: TimerId | undefined;

  constructor(options: SwitchboardOptions) {
    this.#o = options;
    this.faults = { ...noFaults(), ...options.faults, down: false };
    this.permission = options.permission ??
      { decision: "deny", reason: "the dev relay denies tools unless told otherwise" };
  }

  /** Changes fault switches; `down` shuts or reopens the listener (same port). */
  async set(patch: FaultPatch): Promise<DevRelayFaults> {
    const wasDown = this.faults.down;
    this.faults = { ...this.faults, ...patch };
    if (patch.failStatus === 0) this.faults.failCount = 0;
    if (patch.dropWebSockets === true) {
      this.#o.hub.dropAll(1013, "relay refusing bus connections");
    }
    if (!this.#closed) {
      if (this.faults.down && !wasDown) {
        this.#o.trace("going down: the listener is closed");
        await this.#goDown();
      } else if (!this.faults.down && wasDown) {
        this.#o.listener.open();
        this.#o.trace(`back up on http://127.0.0.1:${this.#o.listener.port}`);
      }
    }
    return { ...this.faults };
  }

  /** Every switch off (and the listener up), cancelling a pending comeback. */
  async clear(): Promise<DevRelayFaults> {
    this.#cancelComeback();
    return await this.set(noFaults());
  }

  /** Goes down once the current request is answered, and comes back after `downMs`. */
  downFor(downMs: number): void {
    const { clock } = this.#o;
    clock.setTimeout(() => {
      void this.set({ down: true }).then(() => {
        if (this.#closed) return;
        this.#downTimer = clock.setTimeout(() => {
          this.#downTimer = undefined;
          void this.set({ down: false }).catch((error) =>
            log.error(`the relay could not come back up: ${errorText(error)}`)
          );
        }, downMs);
      });
    }, 0);
  }

  /** Stops for good: no comeback, the bus and the listener closed. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#cancelComeback();
    await this.#goDown();
  }

  #cancelComeback(): void {
    if (this.#downTimer !== undefined) this.#o.clock.clearTimeout(this.#downTimer);
    this.#downTimer = undefined;
  }

  async #goDown(): Promise<void> {
    await this.#o.listener.shut(() => this.#o.hub.close());
  }
}
