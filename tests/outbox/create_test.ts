import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import {
  inspectOutbox,
  Outbox,
  OutboxLockedError,
  outboxLockHeld,
  prepareOutboxFile,
} from "../../src/outbox/mod.ts";
import { okAll, open, TestClock, withDir } from "./support.ts";

function pragmas(path: string) {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const one = (sql: string) => Object.values(db.prepare(sql).get() ?? {})[0];
    return {
      journal: one("PRAGMA journal_mode"),
      vacuum: one("PRAGMA auto_vacuum"),
      version: one("PRAGMA user_version"),
    };
  } finally {
    db.close();
  }
}

Deno.test("outbox create: a new outbox is complete on open: WAL, incremental vacuum, schema, mode 0600, no build left", async () => {
  await withDir(async (dir) => {
    const outbox = open(dir, new TestClock(), { send: okAll });
    const path = join(dir, "outbox.sqlite");
    assert.equal(outbox.enqueue({ kind: "insight", payload: { n: 1 } }).durable, true);
    assert.equal((Deno.statSync(path).mode ?? 0) & 0o777, 0o600);
    await outbox.close();
    assert.deepEqual(pragmas(path), { journal: "wal", vacuum: 2, version: 1 });
    assert.equal(inspectOutbox(path).pending, 1);
    const names = Deno.readDirSync(dir).map((e) => e.name).toArray();
    assert.ok(
      names.includes("outbox.sqlite") && !names.some((n) => n.endsWith(".new")),
      `${names}`,
    );
  });
});

Deno.test("outbox create: a build left by a crash is replaced, never opened as the outbox", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "outbox.sqlite");
    Deno.writeTextFileSync(`${path}.new`, "half a database, then the crash");
    const outbox = open(dir, new TestClock(), { send: okAll });
    await outbox.close();
    assert.deepEqual(pragmas(path), { journal: "wal", vacuum: 2, version: 1 });
    assert.throws(() => Deno.lstatSync(`${path}.new`), Deno.errors.NotFound);
  });
});

Deno.test("outbox create: prepareOutboxFile builds a new outbox once, and never touches one that exists or is held", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "outbox.sqlite");
    prepareOutboxFile(path);
    assert.deepEqual(pragmas(path), { journal: "wal", vacuum: 2, version: 1 });
    assert.equal(outboxLockHeld(path), false, "the lock is released");

    // Held by a runner: nothing happens, nothing is thrown.
    const outbox = open(dir, new TestClock(), { send: okAll });
    outbox.enqueue({ kind: "insight", payload: { n: 1 } });
    const before = Deno.readFileSync(path);
    prepareOutboxFile(path);
    assert.deepEqual(Deno.readFileSync(path), before);
    await outbox.close();
    assert.equal(inspectOutbox(path).pending, 1);

    // Whatever stands in the way is left for the open to report.
    const blocked = join(dir, "not-a-dir");
    Deno.writeTextFileSync(blocked, "");
    prepareOutboxFile(join(blocked, "outbox.sqlite"));
    assert.throws(
      () => new Outbox({ path: join(blocked, "outbox.sqlite"), agentId: "a", send: okAll }),
    );
  });
});

Deno.test("outbox create: a second opener of a new outbox is refused by the lock, not by a half-built file", async () => {
  await withDir(async (dir) => {
    const first = open(dir, new TestClock(), { send: okAll });
    assert.throws(() => open(dir, new TestClock(), { send: okAll }), OutboxLockedError);
    await first.close();
  });
});

Deno.test("outbox create: a journal left without its outbox is cleared, never rolled back into the new one", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "outbox.sqlite");
    // A hot journal of another database once at this path: a transaction spilled, then a crash.
    const other = new DatabaseSync(path);
    other.exec("PRAGMA journal_mode = DELETE; PRAGMA cache_size = 1; CREATE TABLE t (x)");
    other.exec("INSERT INTO t VALUES (1)");
    other.exec("BEGIN");
    other.exec(
      "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 500) " +
        "INSERT INTO t SELECT randomblob(2000) FROM c",
    );
    const journal = Deno.readFileSync(`${path}-journal`);
    other.exec("ROLLBACK");
    other.close();
    Deno.removeSync(path);
    Deno.writeFileSync(`${path}-journal`, journal);

    const outbox = open(dir, new TestClock(), { send: okAll });
    outbox.enqueue({ kind: "insight", payload: { n: 1 } });
    await outbox.close();
    assert.equal(inspectOutbox(path).pending, 1);
    assert.deepEqual(pragmas(path), { journal: "wal", vacuum: 2, version: 1 });
  });
});
