/**
 * The runner's one way out: builds each {@linkcode Outgoing} event (mirror entries, replies,
 * mark-reads, task status, insights) and queues it in the durable outbox with the event's own
 * time. Queueing never throws into the runner: a failure is logged as an error.
 *
 * @module
 */
import { getLogger } from "../logger.ts";
import type { EnqueueResult, Outbox } from "../outbox/mod.ts";
import type { ReceiptState } from "../relay/mod.ts";
import type { Message, TaskStatus } from "../types.ts";
import { errorText } from "../util/mod.ts";
import {
  failureReply,
  markRead,
  mirrorEntry,
  type Outgoing,
  receipt,
  replyTo,
  taskStatus,
} from "./outgoing.ts";

const log = getLogger("runner");

/** Who the events are about. */
export interface EventQueueOptions {
  agentId: string;
  provider: string;
  /** The project the insights name (the agent's cwd). */
  project: string;
  /** The session id insights carry. */
  sessionId: () => string;
  now: () => number;
}

/** Queues the runner's events in the outbox (once it is open). */
export class EventQueue {
  #outbox: Pick<Outbox, "enqueue"> | undefined;
  readonly #o: EventQueueOptions;

  constructor(options: EventQueueOptions) {
    this.#o = options;
  }

  /** The outbox the events go into, once open. */
  attach(outbox: Pick<Outbox, "enqueue">): void {
    this.#outbox = outbox;
  }

  /**
   * Queues one event that happened at `at` (epoch ms). `key`: the relay's dedup key, for an
   * event the runner may queue again after a crash.
   */
  queue(event: Outgoing, at: number = this.#o.now(), key?: string): EnqueueResult | undefined {
    try {
      return this.#outbox?.enqueue({
        kind: event.kind,
        payload: event.payload,
        occurredAt: at,
        ...(key !== undefined ? { idempotencyKey: key } : {}),
      });
    } catch (error) {
      log.error(`queueing a ${event.kind} event failed: ${errorText(error)}`);
      return undefined;
    }
  }

  /** A mirror entry of `type` (`prompt`, `step`, `response`...). */
  mirror(
    type: string,
    body: string,
    options: { at?: number; extra?: Record<string, unknown>; from?: string } = {},
  ): void {
    const { agentId, provider } = this.#o;
    this.queue(
      mirrorEntry(type, body, {
        agentId,
        provider,
        ...(options.from ? { from: options.from } : {}),
        ...(options.extra ? { extra: options.extra } : {}),
      }),
      options.at,
    );
  }

  /**
   * A relay message shown as its sender's prompt to the agent: once per message, also when a
   * runner killed after queueing it queues it again (the relay deduplicates by the key).
   */
  prompt(message: Message, at: number): void {
    const { agentId, provider } = this.#o;
    const entry = mirrorEntry("prompt", message.body, {
      agentId,
      provider,
      from: message.from,
      extra: { origin: "relay", messageId: message.id },
    });
    this.queue(entry, at, `${agentId}:prompt:${message.id}:${message.createdAt}`);
  }

  /** A lifecycle event on the mirror's timeline. */
  timeline(status: string, details: Record<string, unknown>): void {
    this.mirror("timeline", status, { extra: { status, ...details } });
  }

  /** The agent's answer to `message`; `undefined` when it could not be stored. */
  reply(message: Message, body: string, at: number): EnqueueResult | undefined {
    return this.queue(replyTo(message, body, this.#o), at);
  }

  /**
   * The failure reply to `message`: its turn failed for good, for the reason `error`.
   * `undefined` when it could not be stored.
   */
  failureReply(
    message: Pick<Message, "id" | "from">,
    error: string,
    at: number,
  ): EnqueueResult | undefined {
    return this.queue(failureReply(message, error, this.#o), at);
  }

  /** A receipt: `message` reached `state` here. */
  receipt(
    messageId: number,
    state: ReceiptState,
    options: { at?: number; detail?: string } = {},
  ): void {
    this.queue(receipt(messageId, state, options.detail), options.at);
  }

  /** Marks `messageId` read on the relay. */
  markRead(messageId: number, at: number): void {
    this.queue(markRead(messageId), at);
  }

  /** The status of the task `message` carries, if it carries one. */
  task(message: Message, status: TaskStatus): void {
    if (message.taskId) this.queue(taskStatus({ id: message.id, taskId: message.taskId }, status));
  }

  /** An insight from the runner. */
  insight(signal: string, value: unknown, outcome?: unknown): EnqueueResult | undefined {
    return this.queue({
      kind: "insight",
      payload: {
        sessionId: this.#o.sessionId(),
        project: this.#o.project,
        agentId: this.#o.agentId,
        signal,
        value,
        ...(outcome !== undefined ? { outcome } : {}),
        source: "runner",
      },
    });
  }
}
