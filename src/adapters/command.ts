/**
 * The `command` provider: runs any program that speaks JSON lines (docs/providers/command.md).
 *
 * Each delivered message is written to the program's stdin as one JSON line (the relay
 * {@linkcode Message}). The program writes JSON lines on stdout:
 *
 * - `{"type":"response","text":"...","replyTo":123}`: the turn's answer (`replyTo` optional);
 * - `{"type":"status","status":"busy"|"idle"|"error","error"?:"..."}`: its own status (`error`
 *   fails the turn in progress, with the `error` text when given);
 * - `{"type":"step","kind":"tool_use","text":"..."}`: a tool or reasoning step for the mirror;
 * - any other line (plain text, or JSON of another shape): response text.
 *
 * A turn starts when messages are delivered and ends once every delivered message is answered (a
 * response with its `replyTo`, or one response without `replyTo` for all of them), or failed when
 * it reports `error`. A program that reports `busy` or `idle` takes over: from then on its turns
 * end when it says `idle` (or `error`).
 * stderr goes to the log. `interrupt()` sends SIGINT during a turn (nothing when idle); `stop()`
 * closes stdin, then SIGTERM, then SIGKILL.
 *
 * @module
 */
import { settlesWithin, signalChild, stopChild } from "./child.ts";
import { errorText } from "../util/mod.ts";
import type { Message } from "../types.ts";
import { readLines } from "./line_reader.ts";
import { oneSentence } from "./turn_error.ts";
import type { AdapterContext, AdapterEvents, AdapterFactory, ProviderAdapter } from "./adapter.ts";

const STATUSES = new Set(["busy", "idle", "error"]);

class CommandAdapter implements ProviderAdapter {
  #child: Deno.ChildProcess | undefined;
  #stdin: WritableStreamDefaultWriter<Uint8Array> | undefined;
  #stopping = false;
  #selfReported = false;
  #inTurn = false;
  /** Delivered message ids not answered yet in this turn. */
  readonly #awaiting = new Set<number>();
  #done: Promise<void> = Promise.resolve();
  /** Settles once the delivery being written is reported `consumed` (or failed). */
  #handingOver: Promise<void> | undefined;
  readonly #encoder = new TextEncoder();

  constructor(readonly context: AdapterContext, readonly events: AdapterEvents) {}

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  start(): Promise<void> {
    const [program, ...args] = this.context.args;
    if (!program) return Promise.reject(new Error("The command provider needs a program to run"));
    this.#stopping = false;
    this.#selfReported = false;
    this.#inTurn = false;
    const child = this.context.spawn(program, {
      args,
      cwd: this.context.cwd,
      env: this.context.env,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    });
    this.#child = child;
    this.#stdin = child.stdin.getWriter();
    const pipes = new AbortController();
    const stdout = this.#readStdout(child.stdout, pipes.signal);
    const stderr = this.#readStderr(child.stderr, pipes.signal);
    this.#done = (async () => {
      const status = await child.status;
      // A grandchild (a background job of the program) may hold the pipes open: read what is
      // left for a moment, then let go.
      const drained = Promise.allSettled([stdout, stderr]);
      if (!(await settlesWithin(drained, 1_000))) pipes.abort();
      await drained;
      this.#child = undefined;
      const stdin = this.#stdin;
      this.#stdin = undefined;
      // The program is gone: drop whatever it did not read.
      await stdin?.abort().catch(() => {});
      // No turn-end for a turn cut short by the exit: the runner delivers its messages again
      // (or, when stopping, leaves them unread for the next start).
      this.#inTurn = false;
      this.#awaiting.clear();
      this.events.exit({ code: status.code, signal: status.signal, expected: this.#stopping });
    })();
    this.events.status("idle");
    return Promise.resolve();
  }

  async deliver(messages: Message[]): Promise<void> {
    const stdin = this.#stdin;
    if (!stdin || !this.#child) throw new Error("The command provider is not running");
    const text = messages.map((m) => JSON.stringify(m) + "\n").join("");
    this.#inTurn = true;
    for (const m of messages) this.#awaiting.add(m.id);
    if (!this.#selfReported) this.events.status("busy");
    // The program may answer before the write's promise resumes here: what it says waits for
    // the `consumed` below (#readStdout), so the runner always hears them in that order.
    const handedOver = Promise.withResolvers<void>();
    this.#handingOver = handedOver.promise;
    try {
      await stdin.write(this.#encoder.encode(text));
    } catch (error) {
      this.#inTurn = false;
      if (!this.#selfReported) this.events.status("idle");
      handedOver.resolve();
      throw new Error(`Writing to the program's stdin failed: ${errorText(error)}`);
    }
    this.events.event({ type: "consumed", messageIds: messages.map((m) => m.id) }, Date.now());
    handedOver.resolve();
  }

  /** SIGINT to the program during a turn; nothing when idle (a SIGINT would end most programs). */
  interrupt(): Promise<void> {
    if (this.#child && this.#inTurn) signalChild(this.#child, "SIGINT");
    return Promise.resolve();
  }

  async stop(options: { timeoutMs?: number } = {}): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#stopping = true;
    const timeoutMs = options.timeoutMs ?? 5_000;
    // The exit aborts whatever stdin still holds.
    await stopChild(child, this.#done, {
      closeStdin: () => this.#stdin?.close(),
      graceMs: timeoutMs / 2,
      termGraceMs: timeoutMs / 2,
    });
  }

  kill(): void {
    if (this.#child) signalChild(this.#child, "SIGKILL");
  }

  #endTurn(ok: boolean, error?: string): void {
    if (!this.#inTurn) return;
    this.#inTurn = false;
    this.#awaiting.clear();
    this.events.event({ type: "turn-end", ok, ...(error ? { error } : {}) }, Date.now());
  }

  #onLine(line: string): void {
    if (line.trim() === "") return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      parsed = undefined;
    }
    const record = typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)
      ? parsed as Record<string, unknown>
      : undefined;
    const now = Date.now();
    if (record?.["type"] === "status" && STATUSES.has(String(record["status"]))) {
      const status = String(record["status"]) as "busy" | "idle" | "error";
      // `error` alone does not take over the turns: a program that only reports failures keeps
      // ending its turns with its answers.
      if (status !== "error") this.#selfReported = true;
      if (status === "busy") this.#inTurn = true;
      if (status === "idle") this.#endTurn(true);
      if (status === "error") {
        const said = typeof record["error"] === "string" ? record["error"] : undefined;
        this.#endTurn(false, oneSentence(said, "The program reported an error"));
      }
      this.events.status(status);
      return;
    }
    if (record?.["type"] === "step" && typeof record["text"] === "string") {
      const kind = typeof record["kind"] === "string" ? record["kind"] : "step";
      this.events.event({ type: "step", kind, text: record["text"] }, now);
      return;
    }
    let text = line;
    let replyTo: number | undefined;
    if (record?.["type"] === "response" && typeof record["text"] === "string") {
      text = record["text"];
      if (Number.isSafeInteger(record["replyTo"])) replyTo = record["replyTo"] as number;
    }
    this.events.event(
      { type: "response", text, ...(replyTo !== undefined ? { replyTo } : {}) },
      now,
    );
    if (replyTo === undefined) this.#awaiting.clear();
    else this.#awaiting.delete(replyTo);
    if (!this.#selfReported && this.#awaiting.size === 0) {
      this.#endTurn(true);
      this.events.status("idle");
    }
  }

  async #readStdout(stream: ReadableStream<Uint8Array>, signal: AbortSignal): Promise<void> {
    const onPartial = (text: string) =>
      this.events.diagnostic?.(`an unfinished last line was ignored: ${text.slice(0, 200)}`);
    for await (const line of readLines(stream, { signal, onPartial })) {
      if (this.#handingOver) await this.#handingOver;
      try {
        this.#onLine(line);
      } catch (error) {
        this.context.log.error(`command output handling failed: ${errorText(error)}`);
      }
    }
  }

  async #readStderr(stream: ReadableStream<Uint8Array>, signal: AbortSignal): Promise<void> {
    for await (const line of readLines(stream, { signal })) {
      if (line.trim() === "") continue;
      if (this.events.diagnostic) this.events.diagnostic(line);
      else this.context.log.warn(`stderr: ${line}`);
    }
  }
}

/** Builds the `command` provider's adapter. The program and its args are `context.args`. */
export const createCommandAdapter: AdapterFactory = (context, events) =>
  new CommandAdapter(context, events);
