/**
 * The reference relay's storage on `node:sqlite`: messages (with idempotency keys and
 * per-agent read marks), reply obligations, insights, task statuses, heartbeats, bus status
 * frames, permission requests, departures, receipts and bearer tokens (stored as SHA-256 hashes).
 *
 * Every write is one synchronous statement (or a short savepoint), so concurrent requests
 * cannot interleave inside an idempotency check; {@linkcode RelayStore.transaction} runs many
 * writes (a batch) in one transaction. Each SQL text is prepared once and its statement kept
 * (the batch path runs the same few statements thousands of times a second).
 *
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import type { Message } from "../types.ts";
import { sha256Hex } from "./sha256.ts";
import {
  insightOf,
  json,
  messageOf,
  num,
  obligationOf,
  receiptOf,
  type Row,
  storedInsight,
  storedMessage,
  storedReceipt,
  str,
  unjson,
} from "./store_rows.ts";
import { SCHEMA } from "./store_schema.ts";
import type {
  DevRelayState,
  NewInsight,
  NewMessage,
  StoredHeartbeat,
  StoredInsight,
  StoredObligation,
  StoredPermissionRequest,
  StoredReceipt,
  StoredStatus,
  StoredTaskStatus,
  TokenCheck,
} from "./store_types.ts";

function hashToken(token: string): string {
  return sha256Hex(token);
}

/** 24 random bytes in base64url, no padding (32 characters). */
function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_");
}

/** The relay's database. */
export class RelayStore {
  #db: DatabaseSync;
  #now: () => number;
  #statements = new Map<string, StatementSync>();

  /** Opens (and creates) the database at `path` (`:memory:` for none). */
  constructor(path: string, options: { now?: () => number } = {}) {
    this.#db = new DatabaseSync(path);
    this.#now = options.now ?? Date.now;
    if (path !== ":memory:") this.#db.exec("PRAGMA journal_mode = WAL");
    this.#db.exec("PRAGMA busy_timeout = 2000");
    this.#db.exec(SCHEMA);
  }

  /** The prepared statement of `sql`, prepared at its first use. */
  #sql(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  #isoAt = { ms: NaN, text: "" };

  /** The time as ISO-8601 (made once per millisecond: a batch stores many rows in one). */
  #iso(): string {
    const ms = this.#now();
    if (ms !== this.#isoAt.ms) this.#isoAt = { ms, text: new Date(ms).toISOString() };
    return this.#isoAt.text;
  }

  close(): void {
    this.#db.close();
  }

  /** Runs `work` in one transaction: committed when it returns, rolled back when it throws. */
  transaction<T>(work: () => T): T {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const result = work();
      this.#db.exec("COMMIT");
      return result;
    } catch (error) {
      this.#db.exec("ROLLBACK");
      throw error;
    }
  }

  // -- tokens --------------------------------------------------------------------------------

  /** Makes `token` the root token: valid, never expiring; any previous root is forgotten. */
  setRootToken(token: string): void {
    this.#db.exec("DELETE FROM tokens WHERE root = 1");
    this.#sql(
      "INSERT OR REPLACE INTO tokens (hash, expires_at, issued_at, root) VALUES (?, NULL, ?, 1)",
    ).run(hashToken(token), this.#now());
  }

  /** Whether `token` is known and unexpired; and when it expires(d). */
  checkToken(token: string): { check: TokenCheck; expiresAt?: number } {
    const row = this.#sql("SELECT expires_at FROM tokens WHERE hash = ?").get(
      hashToken(token),
    ) as Row | undefined;
    if (!row) return { check: "unknown" };
    if (row["expires_at"] === null) return { check: "valid" };
    const expiresAt = num(row, "expires_at");
    return { check: expiresAt > this.#now() ? "valid" : "expired", expiresAt };
  }

  /** Issues a new random token valid for `ttlMs`. */
  issueToken(ttlMs: number): { token: string; expiresAt: number } {
    const token = `drt_${randomToken()}`;
    const expiresAt = this.#now() + ttlMs;
    this.#sql("INSERT INTO tokens (hash, expires_at, issued_at, root) VALUES (?, ?, ?, 0)")
      .run(hashToken(token), expiresAt, this.#now());
    return { token, expiresAt };
  }

  /** Expires every token now (the root token included). */
  expireAllTokens(): void {
    this.#sql("UPDATE tokens SET expires_at = ?").run(this.#now());
  }

  // -- messages ------------------------------------------------------------------------------

  /**
   * Stores a message, or finds the one already stored under its idempotency key. A new
   * `chat` message without `replyTo` creates a reply obligation for its recipient; a message
   * with `replyTo` clears its sender's obligation for that message.
   */
  addMessage(input: NewMessage): { message: Message; created: boolean } {
    const createdAt = this.#iso();
    const obliges = input.kind === "chat" && input.replyTo === undefined;
    const clears = input.replyTo !== undefined;
    // One statement is atomic on its own; two need a savepoint (not BEGIN: it also nests
    // inside a batch's transaction).
    const savepoint = obliges || clears;
    if (savepoint) this.#sql("SAVEPOINT add_message").run();
    try {
      const payloadJson = json(input.payload);
      // A repeated key inserts nothing (one statement, not a look-up and then an insert).
      const { changes, lastInsertRowid } = this.#sql(
        `INSERT INTO messages
          (sender, recipient, kind, body, reply_to, payload, task_id, occurred_at, created_at,
           idempotency_key)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (idempotency_key) DO NOTHING`,
      ).run(
        input.from,
        input.to,
        input.kind,
        input.body,
        input.replyTo ?? null,
        payloadJson,
        input.taskId ?? null,
        input.occurredAt ?? null,
        createdAt,
        input.idempotencyKey ?? null,
      );
      if (changes === 0) {
        if (savepoint) this.#sql("RELEASE add_message").run();
        const existing = this.#sql("SELECT * FROM messages WHERE idempotency_key = ?").get(
          input.idempotencyKey ?? null,
        ) as Row;
        return { message: messageOf(existing), created: false };
      }
      const id = Number(lastInsertRowid);
      if (obliges) {
        this.#sql(
          "INSERT INTO obligations (message_id, agent_id, sender, created_at) VALUES (?, ?, ?, ?)",
        ).run(id, input.to, input.from, createdAt);
      }
      if (clears) {
        this.#sql(
          `UPDATE obligations SET cleared_by = ?, cleared_at = ?
           WHERE message_id = ? AND agent_id = ? AND cleared_by IS NULL`,
        ).run(id, createdAt, input.replyTo ?? null, input.from);
      }
      if (savepoint) this.#sql("RELEASE add_message").run();
      // What the row reads back as, without reading it back.
      return { message: storedMessage(id, input, { createdAt, payloadJson }), created: true };
    } catch (error) {
      if (savepoint) {
        this.#sql("ROLLBACK TO add_message").run();
        this.#sql("RELEASE add_message").run();
      }
      throw error;
    }
  }

  /** One message by id. */
  getMessage(id: number): Message | undefined {
    const row = this.#sql("SELECT * FROM messages WHERE id = ?").get(id) as Row | undefined;
    return row ? messageOf(row) : undefined;
  }

  /**
   * Messages to `agentId` with ids above `after` (default 0), oldest first. With `unread`: only
   * those it has not marked read, and no `session` messages (display-only mirror traffic is not
   * an inbox item) unless `withSession`.
   */
  messagesFor(
    agentId: string,
    options: { unread: boolean; limit: number; after?: number; withSession?: boolean },
  ): Message[] {
    const session = options.withSession ? "" : "AND m.kind <> 'session'";
    const sql = options.unread
      ? `SELECT m.* FROM messages m
         WHERE m.recipient = ? AND m.id > ? ${session} AND NOT EXISTS (
           SELECT 1 FROM message_reads r WHERE r.message_id = m.id AND r.agent_id = m.recipient)
         ORDER BY m.id LIMIT ?`
      : "SELECT * FROM messages m WHERE recipient = ? AND m.id > ? ORDER BY id LIMIT ?";
    return (this.#sql(sql).all(agentId, options.after ?? 0, options.limit) as Row[])
      .map(messageOf);
  }

  /** Marks a message read by `agentId` (idempotent). */
  markRead(messageId: number, agentId: string): void {
    this.#sql(
      "INSERT OR IGNORE INTO message_reads (message_id, agent_id, read_at) VALUES (?, ?, ?)",
    ).run(messageId, agentId, this.#iso());
  }

  /**
   * Stores a receipt, or finds the one already stored for the same message, agent and state
   * (the first one stays).
   */
  addReceipt(
    input: Omit<StoredReceipt, "createdAt">,
  ): { receipt: StoredReceipt; created: boolean } {
    const existing = this.#sql(
      "SELECT * FROM receipts WHERE message_id = ? AND agent_id = ? AND state = ?",
    ).get(input.messageId, input.agentId, input.state) as Row | undefined;
    if (existing) return { receipt: receiptOf(existing), created: false };
    const createdAt = this.#iso();
    this.#sql(
      `INSERT INTO receipts (message_id, agent_id, state, at, detail, created_at)
       VALUES (?, ?, ?, ?, ?, ?)`,
    ).run(
      input.messageId,
      input.agentId,
      input.state,
      input.at,
      input.detail ?? null,
      createdAt,
    );
    return { receipt: storedReceipt(input, createdAt), created: true };
  }

  /** A message's receipts, in the order they were stored. */
  receiptsFor(messageId: number): StoredReceipt[] {
    return (this.#sql("SELECT * FROM receipts WHERE message_id = ? ORDER BY id").all(
      messageId,
    ) as Row[]).map(receiptOf);
  }

  /** The open reply obligations of `agentId`, oldest first. */
  openObligations(agentId: string): StoredObligation[] {
    return (this.#sql(
      `SELECT o.*, m.body FROM obligations o JOIN messages m ON m.id = o.message_id
       WHERE o.agent_id = ? AND o.cleared_by IS NULL ORDER BY o.message_id`,
    ).all(agentId) as Row[]).map(obligationOf);
  }

  // -- the rest ------------------------------------------------------------------------------

  /** Stores an insight, or finds the one already stored under its idempotency key. */
  addInsight(input: NewInsight): { insight: StoredInsight; created: boolean } {
    if (input.idempotencyKey !== undefined) {
      const existing = this.#sql("SELECT * FROM insights WHERE idempotency_key = ?").get(
        input.idempotencyKey,
      ) as Row | undefined;
      if (existing) return { insight: insightOf(existing), created: false };
    }
    const createdAt = this.#iso();
    const { lastInsertRowid } = this.#sql(
      `INSERT INTO insights (idempotency_key, session_id, project, agent_id, signal, value,
         outcome, source, occurred_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      input.idempotencyKey ?? null,
      input.sessionId,
      input.project,
      input.agentId,
      input.signal,
      json(input.value),
      json(input.outcome),
      input.source,
      input.occurredAt,
      createdAt,
    );
    return { insight: storedInsight(Number(lastInsertRowid), input, createdAt), created: true };
  }

  addTaskStatus(input: Omit<StoredTaskStatus, "id" | "createdAt">): void {
    this.#sql(
      "INSERT INTO task_statuses (task_id, status, agent_id, metadata, created_at) VALUES (?, ?, ?, ?, ?)",
    ).run(input.taskId, input.status, input.agentId, json(input.metadata), this.#iso());
  }

  addHeartbeat(input: Omit<StoredHeartbeat, "id" | "createdAt">): void {
    this.#sql(
      `INSERT INTO heartbeats (agent_id, status, provider, version, pid, host, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      input.agentId,
      input.status,
      input.provider,
      input.version,
      input.pid,
      input.host,
      this.#iso(),
    );
  }

  addStatus(input: Omit<StoredStatus, "id" | "receivedAt">): void {
    this.#sql("INSERT INTO statuses (agent_id, status, at, received_at) VALUES (?, ?, ?, ?)")
      .run(input.agentId, input.status, input.at, this.#iso());
  }

  addPermissionRequest(input: Omit<StoredPermissionRequest, "id" | "createdAt">): void {
    this.#sql(
      `INSERT INTO permission_requests
         (agent_id, request_id, provider, tool, input, decision, reason, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      input.agentId,
      input.requestId,
      input.provider,
      input.tool,
      json(input.input),
      input.decision,
      input.reason ?? null,
      this.#iso(),
    );
  }

  addDeparture(agentId: string): void {
    this.#sql("INSERT INTO departures (agent_id, created_at) VALUES (?, ?)").run(
      agentId,
      this.#iso(),
    );
  }

  /** Everything stored, oldest first in each list. */
  state(): DevRelayState {
    const all = (sql: string) => this.#sql(sql).all() as Row[];
    return {
      messages: all("SELECT * FROM messages ORDER BY id").map(messageOf),
      reads: all("SELECT * FROM message_reads ORDER BY read_at, message_id").map((r) => ({
        messageId: num(r, "message_id"),
        agentId: str(r, "agent_id"),
        readAt: str(r, "read_at"),
      })),
      obligations: all(
        `SELECT o.*, m.body FROM obligations o JOIN messages m ON m.id = o.message_id
         ORDER BY o.message_id`,
      ).map(obligationOf),
      receipts: all("SELECT * FROM receipts ORDER BY id").map(receiptOf),
      insights: all("SELECT * FROM insights ORDER BY id").map(insightOf),
      taskStatuses: all("SELECT * FROM task_statuses ORDER BY id").map((r) => {
        const out: StoredTaskStatus = {
          id: num(r, "id"),
          taskId: str(r, "task_id"),
          status: str(r, "status"),
          agentId: str(r, "agent_id"),
          createdAt: str(r, "created_at"),
        };
        const metadata = unjson(r["metadata"]);
        if (metadata !== undefined) out.metadata = metadata;
        return out;
      }),
      heartbeats: all("SELECT * FROM heartbeats ORDER BY id").map((r) => ({
        id: num(r, "id"),
        agentId: str(r, "agent_id"),
        status: str(r, "status"),
        provider: str(r, "provider"),
        version: str(r, "version"),
        pid: num(r, "pid"),
        host: str(r, "host"),
        createdAt: str(r, "created_at"),
      })),
      statuses: all("SELECT * FROM statuses ORDER BY id").map((r) => ({
        id: num(r, "id"),
        agentId: str(r, "agent_id"),
        status: str(r, "status"),
        at: num(r, "at"),
        receivedAt: str(r, "received_at"),
      })),
      permissionRequests: all("SELECT * FROM permission_requests ORDER BY id").map((r) => {
        const out: StoredPermissionRequest = {
          id: num(r, "id"),
          agentId: str(r, "agent_id"),
          requestId: str(r, "request_id"),
          provider: str(r, "provider"),
          tool: str(r, "tool"),
          input: unjson(r["input"]),
          decision: str(r, "decision") === "allow" ? "allow" : "deny",
          createdAt: str(r, "created_at"),
        };
        if (typeof r["reason"] === "string") out.reason = r["reason"];
        return out;
      }),
      departures: all("SELECT * FROM departures ORDER BY id").map((r) => ({
        agentId: str(r, "agent_id"),
        createdAt: str(r, "created_at"),
      })),
    };
  }
}
