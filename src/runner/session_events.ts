/**
 * What each provider session event does: mirror entries for prompts, reasoning and tool steps,
 * responses to the turn's messages, insights, the saved session id, and the turn's end (its
 * usage mirrored, a failure shown, then the turn settled).
 *
 * @module
 */
import type { SessionEvent, Usage } from "../adapters/mod.ts";
import { getLogger } from "../logger.ts";
import type { Delivery } from "./delivery.ts";
import type { EventQueue } from "./event_queue.ts";

const log = getLogger("runner");

/** What session events act on. */
export interface SessionTargets {
  events: Pick<EventQueue, "mirror" | "insight">;
  delivery: Pick<Delivery, "respond" | "endTurn">;
  now(): number;
  /** The provider's session (or thread) id, to keep for resuming. */
  session(id: string): void;
  /** A turn ended: count it and add its usage. */
  turnEnded(ok: boolean, usage: Usage | undefined): void;
}

/** Applies one session event that happened at `at`. */
export function applySessionEvent(event: SessionEvent, at: number, targets: SessionTargets): void {
  const { events } = targets;
  switch (event.type) {
    case "session-id":
      targets.session(event.id);
      return;
    case "consumed":
      log.debug(`provider consumed message(s) ${event.messageIds.join(", ")}`);
      return;
    case "prompt":
      events.mirror("prompt", event.text, { at, extra: { origin: "provider" } });
      return;
    case "reasoning":
      events.mirror("reasoning", event.text, { at });
      return;
    case "step":
      events.mirror("step", event.text, {
        at,
        extra: { kind: event.kind, ...(event.tool ? { tool: event.tool } : {}) },
      });
      return;
    case "response":
      targets.delivery.respond(event.text, at, event.replyTo);
      return;
    case "insight":
      events.insight(event.signal, event.value, event.outcome);
      return;
    case "turn-end": {
      const now = targets.now();
      targets.turnEnded(event.ok, event.usage);
      const figures = Object.entries(event.usage ?? {}).filter(([, v]) => typeof v === "number");
      if (figures.length > 0) {
        const text = figures.map(([k, v]) => `${k} ${v}`).join(", ");
        events.mirror("usage", `Turn usage: ${text}`, { at: now, extra: { usage: event.usage } });
      }
      if (!event.ok) {
        events.mirror("error", `The turn failed: ${event.error ?? "unknown error"}`, { at: now });
      }
      targets.delivery.endTurn(event.ok, event.error);
      return;
    }
  }
}
