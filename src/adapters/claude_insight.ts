/**
 * The `context_ratio` insight of a Claude session, made at its end from the session transcript,
 * and the guarded read of that transcript: a regular file only (never a FIFO, device or symlink,
 * which could block or point anywhere), at most {@linkcode MAX_TRANSCRIPT_BYTES}, within a time
 * budget, so a hostile or odd `transcript_path` can never hang the runner. The
 * {@linkcode ContextRatioReporter} follows the session's hooks to know when and what to read.
 *
 * @module
 */
import type { SessionEvent } from "./adapter.ts";
import type { HookEvent, HookPayload } from "../control/mod.ts";
import type { Logger } from "../logger.ts";
import { analyzeSession, type ContextRatioMetric } from "./claude_transcript.ts";
import { errorText } from "../util/mod.ts";

/** The largest transcript read. */
export const MAX_TRANSCRIPT_BYTES = 64 * 1024 * 1024;
/** How long reading a transcript may take, ms. */
export const TRANSCRIPT_READ_BUDGET_MS = 2_000;

/** Options of {@linkcode readTranscript}. */
export interface ReadTranscriptOptions {
  /** Default {@linkcode MAX_TRANSCRIPT_BYTES}. */
  maxBytes?: number;
  /** Default {@linkcode TRANSCRIPT_READ_BUDGET_MS}. */
  timeoutMs?: number;
}

/**
 * Reads the transcript at `path` as text. Rejects, saying why, when it is not a regular file
 * (checked with `lstat`, so a symlink is refused too), is larger than `maxBytes`, or cannot be
 * read within `timeoutMs`.
 */
export async function readTranscript(
  path: string,
  options: ReadTranscriptOptions = {},
): Promise<string> {
  const maxBytes = options.maxBytes ?? MAX_TRANSCRIPT_BYTES;
  const timeoutMs = options.timeoutMs ?? TRANSCRIPT_READ_BUDGET_MS;
  const budget = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      budget.abort();
      reject(new Error(`Reading the transcript ${path} took longer than ${timeoutMs} ms`));
    }, timeoutMs);
  });
  const read = readRegularFile(path, maxBytes, budget.signal);
  read.catch(() => {}); // past the budget, a late failure is nobody's business
  try {
    return await Promise.race([read, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function readRegularFile(path: string, maxBytes: number, signal: AbortSignal) {
  const check = (info: Deno.FileInfo) => {
    if (info.isSymlink || !info.isFile) {
      throw new Error(`The transcript ${path} is not a regular file`);
    }
    if (info.size > maxBytes) {
      throw new Error(`The transcript ${path} is larger than ${maxBytes} bytes (${info.size})`);
    }
  };
  check(await Deno.lstat(path));
  const file = await Deno.open(path, { read: true });
  try {
    check(await file.stat()); // replaced between lstat and open?
    const decoder = new TextDecoder();
    const buffer = new Uint8Array(256 * 1024);
    let text = "";
    let total = 0;
    for (;;) {
      if (signal.aborted) throw new Error(`Reading the transcript ${path} was abandoned`);
      const n = await file.read(buffer);
      if (n === null) break;
      total += n;
      if (total > maxBytes) throw new Error(`The transcript ${path} grew past ${maxBytes} bytes`);
      text += decoder.decode(buffer.subarray(0, n), { stream: true });
    }
    return text + decoder.decode();
  } finally {
    file.close();
  }
}

/**
 * The `context_ratio` insight of the session whose transcript is at `path`, or `undefined` when
 * the session made no tool calls. `endReason`: the `reason` of the SessionEnd hook, if given.
 */
export async function contextRatioInsight(
  path: string,
  options: ReadTranscriptOptions & { endReason?: string } = {},
): Promise<(SessionEvent & { type: "insight" }) | undefined> {
  const analysis = analyzeSession(await readTranscript(path, options));
  if (!analysis) return undefined;
  return {
    type: "insight",
    signal: "context_ratio",
    value: { ...analysis.metric, ...(options.endReason ? { endReason: options.endReason } : {}) },
    outcome: analysis.outcome,
  };
}

/** Options of {@linkcode ContextRatioReporter}. */
export interface ContextRatioReporterOptions {
  /** Reports the insight (a session event). */
  emit(event: SessionEvent): void;
  log: Logger;
}

/**
 * Follows a Claude session's transcript path (from the SessionStart hook or the stream) and, on
 * the SessionEnd hook, reads it and reports the `context_ratio` insight, as the runner did.
 */
export class ContextRatioReporter {
  readonly #options: ContextRatioReporterOptions;
  readonly #pending = new Set<Promise<void>>();
  #path: string | undefined;

  constructor(options: ContextRatioReporterOptions) {
    this.#options = options;
  }

  /** The session's transcript is at `path` (learned from the stream). */
  learnPath(path: string): void {
    this.#path = path;
  }

  /** Hears a hook: SessionStart tells the path, SessionEnd starts the insight. */
  onHook(event: HookEvent, payload: HookPayload): void {
    const str = (key: string) =>
      typeof payload[key] === "string" ? payload[key] as string : undefined;
    if (event === "session-start") {
      this.#path = str("transcript_path") ?? this.#path;
      return;
    }
    if (event !== "session-end") return;
    const path = str("transcript_path") ?? this.#path;
    if (path === undefined) return;
    const work = this.#report(path, str("reason"));
    this.#pending.add(work);
    void work.finally(() => this.#pending.delete(work));
  }

  /** Resolves once every insight started so far is reported (or given up). */
  async settled(): Promise<void> {
    await Promise.all(this.#pending);
  }

  async #report(path: string, reason: string | undefined): Promise<void> {
    const log = this.#options.log;
    try {
      const insight = await contextRatioInsight(path, reason ? { endReason: reason } : {});
      if (!insight) return; // No tool calls: nothing to measure.
      this.#options.emit(insight);
      const metric = insight.value as ContextRatioMetric;
      log.info(
        `context_ratio ${
          metric.ratio.toFixed(2)
        } (${metric.gatheringCalls}/${metric.totalToolCalls} gathering) reported`,
      );
    } catch (error) {
      log.warn(`reading the transcript ${path} failed: ${errorText(error)}`);
    }
  }
}
