/**
 * The transport contract between the outbox and whatever delivers its events: the `send`
 * function, the results it reports, how a failure is classified as transient or permanent,
 * and how a failure is written down.
 *
 * @module
 */
import { errorText } from "../util/mod.ts";
import type { OutboxRecord } from "./store.ts";

/** What one record's delivery came to, as the send reports it. */
export type SendResult =
  | { ok: true }
  | {
    ok: false;
    /** The failure (an Error, a message...). */
    error: unknown;
    /** Whether retrying can never help. When absent, the outbox's `classify` decides. */
    permanent?: boolean;
  };

/**
 * The transport: deliver `records` (1 to `batchSize`, in sequence order) and report one result
 * per record, in the same order. A send should deliver in order and stop at its first failure,
 * reporting the rest as transient failures. A rejected promise counts as a failure of the whole
 * batch, classified by `classify`. The signal aborts when the outbox stops or closes.
 */
export type OutboxSend = (
  records: OutboxRecord[],
  options: { signal: AbortSignal },
) => Promise<SendResult[]>;

/** Whether a failure can be retried. */
export type FailureClass = "transient" | "permanent";

/** The default classifier: an error with `permanent === true` is permanent. */
export function defaultClassify(error: unknown): FailureClass {
  if (typeof error === "object" && error !== null) {
    try {
      if ((error as { permanent?: unknown }).permanent === true) return "permanent";
    } catch {
      // A throwing getter: treat as transient.
    }
  }
  return "transient";
}

/** Whether `classify` calls `error` permanent; a throwing classifier means transient. */
export function isPermanent(
  classify: (error: unknown) => FailureClass,
  error: unknown,
): boolean {
  try {
    return classify(error) === "permanent";
  } catch {
    return false;
  }
}

/** The longest failure text kept (in the file, the stats and the logs). */
const MAX_FAILURE_CHARS = 1_000;

/**
 * A failure as the outbox stores and reports it: one line of at most 1,000 characters. An
 * `Error` without a message gives its name, and a plain object its JSON.
 */
export function failureText(error: unknown): string {
  let text: string;
  if (error instanceof Error) text = error.message || error.name;
  else if (typeof error !== "object" || error === null) text = errorText(error);
  else {
    try {
      text = JSON.stringify(error) ?? errorText(error);
    } catch {
      text = errorText(error);
    }
  }
  text = text.replace(/\s+/g, " ").trim() || "unknown error";
  return text.length > MAX_FAILURE_CHARS ? `${text.slice(0, MAX_FAILURE_CHARS)}...` : text;
}

/** A record the relay refused for good, with the reason. */
export interface Refusal {
  record: OutboxRecord;
  error: string;
}

/** A batch's results read in order: what was delivered, refused, and where a failure stopped it. */
export interface BatchOutcome {
  /** Delivered, in order. */
  acked: OutboxRecord[];
  /** Refused permanently. */
  refused: Refusal[];
  /** The first transient failure: its index in the batch and its text. */
  failure?: { at: number; text: string };
}

/**
 * Reads a send's answer for `records`. Results apply in order up to the first transient
 * failure (or missing result); nothing after it counts, even a success.
 */
export function readResults(
  records: readonly OutboxRecord[],
  results: unknown,
  options: { classify: (error: unknown) => FailureClass },
): BatchOutcome {
  const list: unknown[] = Array.isArray(results) ? results : [];
  const outcome: BatchOutcome = { acked: [], refused: [] };
  for (let i = 0; i < records.length; i++) {
    const record = records[i] as OutboxRecord;
    const result = list[i];
    if (typeof result !== "object" || result === null || !("ok" in result)) {
      const text = Array.isArray(results)
        ? `send returned no valid result for event seq=${record.seq}`
        : "send resolved without a result array";
      outcome.failure = { at: i, text };
      break;
    }
    if ((result as { ok: unknown }).ok === true) {
      outcome.acked.push(record);
      continue;
    }
    const r = result as { error?: unknown; permanent?: unknown };
    const permanent = typeof r.permanent === "boolean"
      ? r.permanent
      : isPermanent(options.classify, r.error);
    if (permanent) {
      outcome.refused.push({ record, error: failureText(r.error) });
      continue;
    }
    outcome.failure = { at: i, text: failureText(r.error) };
    break;
  }
  return outcome;
}
