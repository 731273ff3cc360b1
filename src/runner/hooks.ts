/**
 * The runner's side of the provider's hooks (Claude Code): what each hook event changes in the
 * runner's bookkeeping once the control server has answered it. The answers themselves (the Stop
 * decision, permissions) are the control server's; provider-specific work (reading a transcript
 * at session end) is the adapter's, through its `onHook`.
 *
 * @module
 */
import {
  type HookContext,
  type HookEvent,
  type HookPayload,
  MAX_QUOTED_CHARS,
  MAX_QUOTED_MESSAGES,
} from "../control/mod.ts";
import type { Delivery } from "./delivery.ts";
import type { EventQueue } from "./event_queue.ts";
import type { ReplyObligation } from "../types.ts";

/** What a hook can change. */
export interface HookTargets {
  delivery: Pick<Delivery, "foldStop">;
  events: Pick<EventQueue, "mirror">;
  /** A subagent started (+1) or stopped (-1). */
  subagent(delta: 1 | -1): void;
  now(): number;
}

const text = (payload: HookPayload, key: string) =>
  typeof payload[key] === "string" ? payload[key] as string : undefined;

/** Applies one hook event; returns nothing (the server's answer stands). */
export function applyHook(
  event: HookEvent,
  payload: HookPayload,
  options: { context: HookContext; targets: HookTargets },
): void {
  const { context, targets } = options;
  switch (event) {
    case "subagent-start":
      targets.subagent(1);
      return;
    case "subagent-stop":
      targets.subagent(-1);
      return;
    case "stop":
      if (context.stop?.blocked) {
        const owed: ReplyObligation[] = context.stop.outstanding;
        targets.delivery.foldStop(text(payload, "last_assistant_message"), {
          quoted: quotedInFull(owed),
          all: owed.length,
        });
      }
      return;
    case "pre-compact":
    case "post-compact":
      targets.events.mirror(
        "step",
        event === "pre-compact" ? "Compacting context" : "Context compacted",
        { at: targets.now(), extra: { kind: "compact" } },
      );
      return;
    default:
      return;
  }
}

/** The owed messages a Stop block quoted whole: only those can the agent answer from it. */
export function quotedInFull(owed: readonly ReplyObligation[]): ReplyObligation[] {
  return owed.slice(0, MAX_QUOTED_MESSAGES).filter((o) =>
    o.body !== undefined && o.body.length <= MAX_QUOTED_CHARS
  );
}
