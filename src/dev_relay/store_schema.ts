/**
 * The reference relay's SQLite schema.
 *
 * @module
 */

/** Creates every table and index (idempotent). */
export const SCHEMA = `
CREATE TABLE IF NOT EXISTS messages (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  sender TEXT NOT NULL,
  recipient TEXT NOT NULL,
  kind TEXT NOT NULL,
  body TEXT NOT NULL,
  reply_to INTEGER,
  payload TEXT,
  task_id TEXT,
  occurred_at INTEGER,
  created_at TEXT NOT NULL,
  idempotency_key TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS messages_recipient ON messages (recipient, id);
CREATE TABLE IF NOT EXISTS message_reads (
  message_id INTEGER NOT NULL,
  agent_id TEXT NOT NULL,
  read_at TEXT NOT NULL,
  PRIMARY KEY (message_id, agent_id)
);
CREATE TABLE IF NOT EXISTS obligations (
  message_id INTEGER PRIMARY KEY,
  agent_id TEXT NOT NULL,
  sender TEXT NOT NULL,
  created_at TEXT NOT NULL,
  cleared_by INTEGER,
  cleared_at TEXT
);
CREATE INDEX IF NOT EXISTS obligations_agent ON obligations (agent_id, cleared_by);
CREATE TABLE IF NOT EXISTS receipts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  message_id INTEGER NOT NULL,
  agent_id TEXT NOT NULL,
  state TEXT NOT NULL,
  at INTEGER NOT NULL,
  detail TEXT,
  created_at TEXT NOT NULL,
  UNIQUE (message_id, agent_id, state)
);
CREATE TABLE IF NOT EXISTS insights (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  idempotency_key TEXT UNIQUE,
  session_id TEXT NOT NULL,
  project TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  signal TEXT NOT NULL,
  value TEXT,
  outcome TEXT,
  source TEXT NOT NULL,
  occurred_at INTEGER NOT NULL,
  created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS task_statuses (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  task_id TEXT NOT NULL,
  status TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  metadata TEXT,
  created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS heartbeats (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  agent_id TEXT NOT NULL,
  status TEXT NOT NULL,
  provider TEXT NOT NULL,
  version TEXT NOT NULL,
  pid INTEGER NOT NULL,
  host TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS statuses (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  agent_id TEXT NOT NULL,
  status TEXT NOT NULL,
  at INTEGER NOT NULL,
  received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS permission_requests (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  agent_id TEXT NOT NULL,
  request_id TEXT NOT NULL,
  provider TEXT NOT NULL,
  tool TEXT NOT NULL,
  input TEXT,
  decision TEXT NOT NULL,
  reason TEXT,
  created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS departures (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  agent_id TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
  hash TEXT PRIMARY KEY,
  expires_at INTEGER,
  issued_at INTEGER NOT NULL,
  root INTEGER NOT NULL DEFAULT 0
);
`;
