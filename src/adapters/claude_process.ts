/**
 * One running Claude Code process and its pipes: stdout split into lines, stderr kept as a short
 * tail for error messages and passed on as diagnostics, stdin written line by line, and one
 * promise for "exited, with its output handled".
 *
 * @module
 */
import { settlesWithin, signalChild } from "./child.ts";
import { LineSplitter } from "./claude_stream.ts";
import { errorText } from "../util/mod.ts";

/** How many stderr lines {@linkcode ClaudeProcess.stderrTail} keeps. */
export const STDERR_TAIL_LINES = 20;

/** Where a {@linkcode ClaudeProcess} sends what it reads. */
export interface ClaudeProcessEvents {
  /** One stdout line (a stream-json message, or not). */
  line(line: string): void;
  /** A stderr line, or a note about the pipes. */
  diagnostic(line: string): void;
}

/** A spawned Claude process. */
export class ClaudeProcess {
  readonly child: Deno.ChildProcess;
  /**
   * Settles with the exit status once the process is gone and its output (still in the pipes)
   * handled; a grandchild holding the pipes open is not waited for longer than 2 s.
   */
  readonly exited: Promise<Deno.CommandStatus>;
  readonly #events: ClaudeProcessEvents;
  readonly #encoder = new TextEncoder();
  #writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  #stdoutReader: ReadableStreamDefaultReader<string> | undefined;
  #stderrReader: ReadableStreamDefaultReader<string> | undefined;
  #stderrTail: string[] = [];

  constructor(child: Deno.ChildProcess, events: ClaudeProcessEvents) {
    this.child = child;
    this.#events = events;
    this.#writer = child.stdin.getWriter();
    this.#writer.closed.catch(() => {});
    const stdoutDone = this.#readStdout();
    const stderrDone = this.#readStderr();
    this.exited = this.#watchExit(stdoutDone, stderrDone);
  }

  /** The last stderr lines, joined with ` | ` (empty when there were none). */
  get stderrTail(): string {
    return this.#stderrTail.join(" | ");
  }

  /** Writes one line to stdin; rejects when stdin is closed or broken. */
  async write(line: string): Promise<void> {
    const writer = this.#writer;
    if (!writer) throw new Error("Claude's stdin is closed");
    await writer.write(this.#encoder.encode(line));
  }

  /** Closes stdin (Claude finishes and exits); waits for pending writes, so do not await it blindly. */
  closeStdin(): Promise<void> {
    return this.#writer?.close() ?? Promise.resolve();
  }

  /** Sends a signal; a process already gone is not an error. */
  signal(sig: Deno.Signal): void {
    signalChild(this.child, sig);
  }

  async #readStdout(): Promise<void> {
    const reader = this.child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    this.#stdoutReader = reader;
    const splitter = new LineSplitter();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const { lines, dropped } = splitter.push(value);
        if (dropped > 0) this.#events.diagnostic(`dropped ${dropped} overlong stdout line(s)`);
        for (const line of lines) this.#events.line(line);
      }
      const rest = splitter.flush();
      if (rest !== undefined) this.#events.line(rest);
    } catch (error) {
      this.#events.diagnostic(`stdout read failed: ${errorText(error)}`);
    } finally {
      reader.releaseLock();
    }
  }

  async #readStderr(): Promise<void> {
    const reader = this.child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    this.#stderrReader = reader;
    const splitter = new LineSplitter({ maxChars: 64 * 1024 });
    const take = (line: string) => {
      const trimmed = line.trim();
      if (trimmed === "") return;
      this.#stderrTail.push(trimmed.slice(0, 500));
      if (this.#stderrTail.length > STDERR_TAIL_LINES) this.#stderrTail.shift();
      this.#events.diagnostic(trimmed);
    };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const line of splitter.push(value).lines) take(line);
      }
      const rest = splitter.flush();
      if (rest !== undefined) take(rest);
    } catch (error) {
      this.#events.diagnostic(`stderr read failed: ${errorText(error)}`);
    } finally {
      reader.releaseLock();
    }
  }

  async #watchExit(
    stdoutDone: Promise<void>,
    stderrDone: Promise<void>,
  ): Promise<Deno.CommandStatus> {
    const status = await this.child.status;
    // Output still in the pipes is handled before the exit is reported; a grandchild holding
    // the pipes open must not keep us waiting.
    const drained = Promise.all([stdoutDone, stderrDone]);
    if (!await settlesWithin(drained, 2000)) {
      await this.#stdoutReader?.cancel().catch(() => {});
      await this.#stderrReader?.cancel().catch(() => {});
      await drained;
    }
    await this.#writer?.abort().catch(() => {}); // releases stdin after a crash
    this.#writer = undefined;
    return status;
  }
}
