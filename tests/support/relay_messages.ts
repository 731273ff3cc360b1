/**
 * The test's side of the reference relay: posting messages as a user (through faults, when
 * asked) and reading what the runner stored there (replies, mark-reads).
 *
 * @module
 */
import type { DevRelay } from "../../src/dev_relay/mod.ts";
import type { Message } from "../../src/types.ts";
import { sleep } from "./wait.ts";

/** Options of {@linkcode Poster.post}. */
export interface PostOptions {
  /** The sender (default `user`). */
  from?: string;
  /** The message kind (default `chat`). */
  kind?: string;
  taskId?: string;
  /** Default a fresh `test:<uuid>`. */
  idempotencyKey?: string;
  /**
   * Retry until stored (5xx, garbage, refused, 401 with a renewal), for this long. Without it
   * the first failure throws.
   */
  retryForMs?: number;
}

/** Posts messages to the relay as a user; holds its token (renewed when the relay expires it). */
export class Poster {
  #token: string;

  constructor(readonly relay: Pick<DevRelay, "url" | "token">) {
    this.#token = relay.token;
  }

  /** Posts `body` to `to` and returns the stored message; throws naming the failure. */
  async post(to: string, body: string, options: PostOptions = {}): Promise<Message> {
    const deadline = Date.now() + (options.retryForMs ?? 0);
    const key = options.idempotencyKey ?? `test:${crypto.randomUUID()}`;
    for (;;) {
      let problem: string;
      try {
        const res = await fetch(`${this.relay.url}/api/messages`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${this.#token}`,
            "content-type": "application/json",
          },
          body: JSON.stringify({
            from: options.from ?? "user",
            to,
            kind: options.kind ?? "chat",
            body,
            ...(options.taskId === undefined ? {} : { taskId: options.taskId }),
            idempotencyKey: key,
          }),
          signal: AbortSignal.timeout(15_000),
        });
        const text = await res.text();
        if (res.status === 201 || res.status === 200) {
          try {
            return (JSON.parse(text) as { message: Message }).message;
          } catch {
            problem = `an unparseable ${res.status}: ${text.slice(0, 80)}`;
          }
        } else {
          problem = `${res.status} ${text.slice(0, 80)}`;
          if (res.status === 401) await this.#renew();
        }
      } catch (error) {
        problem = String(error);
      }
      if (Date.now() > deadline) throw new Error(`Posting "${body}" failed: ${problem}`);
      await sleep(100);
    }
  }

  async #renew(): Promise<void> {
    try {
      const res = await fetch(`${this.relay.url}/api/tokens/renew`, {
        method: "POST",
        headers: { authorization: `Bearer ${this.#token}` },
      });
      const text = await res.text();
      if (res.ok) this.#token = (JSON.parse(text) as { token: string }).token;
    } catch {
      // Retried by the caller.
    }
  }
}

/** The chat replies stored on the relay addressed to `to`. */
export function replies(relay: DevRelay, to = "user"): Message[] {
  return relay.admin.state().messages.filter((m) =>
    m.kind === "chat" && m.to === to && m.replyTo !== undefined
  );
}

/** The chat replies stored on the relay to message `id`. */
export function repliesTo(relay: DevRelay, id: number): Message[] {
  return relay.admin.state().messages.filter((m) => m.kind === "chat" && m.replyTo === id);
}

/** Whether the relay recorded the mark-read of every message in `ids`. */
export function markedRead(relay: DevRelay, ...ids: number[]): boolean {
  const reads = relay.admin.state().reads;
  return ids.every((id) => reads.some((r) => r.messageId === id));
}

/** The session-mirror messages stored on the relay. */
export function mirrored(relay: DevRelay): Message[] {
  return relay.admin.state().messages.filter((m) => m.kind === "session");
}

/** A session-mirror message, as the tests compare it. */
export interface MirrorEntry {
  /** The session event's type (`prompt`, `step`, `error`...). */
  type: string;
  kind?: string;
  from: string;
  body: string;
  messageId?: number;
}

/** The session-mirror messages on the relay that pass `which`, as {@linkcode MirrorEntry}. */
export function mirrorEntries(relay: DevRelay, which: (m: Message) => boolean): MirrorEntry[] {
  return mirrored(relay).filter(which).map((m) => {
    const session = (m.payload as {
      session?: { type?: string; kind?: string; messageId?: number };
    } | undefined)?.session;
    return {
      type: session?.type ?? "",
      ...(session?.kind ? { kind: session.kind } : {}),
      from: m.from,
      body: m.body,
      ...(session?.messageId !== undefined ? { messageId: session.messageId } : {}),
    };
  });
}
