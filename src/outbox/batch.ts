/**
 * Reading the next batch to send: in sequence order, at most `batchSize` rows and about
 * `batchBytes` of payload, one at a time while a refused batch is being narrowed down, and a
 * corrupt row at the head poisoned on the spot.
 *
 * @module
 */
import type { Statements } from "./database.ts";
import type { Refusal } from "./send.ts";
import {
  CorruptRowError,
  type OutboxRecord,
  type Row,
  rowToRecord,
  rowToRecordLenient,
} from "./store.ts";

/** Options of {@linkcode BatchReader}. */
export interface BatchReaderOptions {
  batchSize: number;
  batchBytes: number;
  /** Poisons a row whose payload cannot be read. */
  poison: (refusals: Refusal[]) => void;
}

/** Reads batches from the head of the queue. */
export class BatchReader {
  readonly #q: Statements;
  readonly #batchSize: number;
  readonly #batchBytes: number;
  readonly #poison: (refusals: Refusal[]) => void;
  /** Average payload size of the rows read lately: sizes reads so that batchBytes is kept. */
  #avgRowBytes = 1024;
  /** After a thrown permanent error on a batch: read one at a time through this seq. */
  #isolateThrough: number | undefined;

  constructor(q: Statements, options: BatchReaderOptions) {
    this.#q = q;
    this.#batchSize = options.batchSize;
    this.#batchBytes = options.batchBytes;
    this.#poison = options.poison;
  }

  /** Whether batches are read one record at a time (a refused batch is being narrowed down). */
  get isolating(): boolean {
    return this.#isolateThrough !== undefined;
  }

  /** Reads one record at a time until the head is past `seq`. */
  isolateThrough(seq: number): void {
    this.#isolateThrough = seq;
  }

  /** The next batch, in seq order. A corrupt row at the head is poisoned on the spot. */
  next(): OutboxRecord[] {
    let limit = this.#limit();
    if (this.#isolateThrough !== undefined) {
      const head = this.#q.head.get(1) as Row | undefined;
      if (head === undefined || head.seq > this.#isolateThrough) this.#isolateThrough = undefined;
      else limit = 1;
    }
    for (;;) {
      const rows = this.#cutToBytes(this.#q.head.all(limit) as unknown as Row[]);
      const records: OutboxRecord[] = [];
      for (const row of rows) {
        try {
          records.push(rowToRecord(row));
        } catch (error) {
          if (!(error instanceof CorruptRowError) || records.length > 0) break;
          this.#poison([{ record: rowToRecordLenient(row), error: error.message }]);
          records.length = 0;
          break;
        }
      }
      if (records.length > 0 || rows.length === 0) return records;
      // The head was corrupt and is now poisoned: read again.
    }
  }

  /** The batch after `seq`, or `undefined` if a row in it does not parse (read it normally). */
  after(seq: number): OutboxRecord[] | undefined {
    try {
      const rows = this.#q.pendingAfter.all(seq, this.#limit()) as unknown as Row[];
      return this.#cutToBytes(rows).map(rowToRecord);
    } catch {
      return undefined;
    }
  }

  /** How many rows to read for a batch: batchSize, or fewer when payloads run large. */
  #limit(): number {
    // Twice the estimate: rarely short of the byte cap, never far over it.
    const fit = 2 * Math.floor(this.#batchBytes / Math.max(1, this.#avgRowBytes)) + 1;
    return Math.max(1, Math.min(this.#batchSize, fit));
  }

  /** Keeps the leading rows within batchBytes (at least one), and learns the row size. */
  #cutToBytes(rows: Row[]): Row[] {
    let bytes = 0;
    for (let i = 0; i < rows.length; i++) {
      bytes += (rows[i] as Row).payload.length;
      if (i > 0 && bytes > this.#batchBytes) {
        this.#avgRowBytes = bytes / (i + 1);
        return rows.slice(0, i);
      }
    }
    if (rows.length > 0) this.#avgRowBytes = bytes / rows.length;
    return rows;
  }
}
