/**
 * Crash tests: a real child process enqueues in a tight loop and prints each acknowledged
 * event; it is killed with SIGKILL at an arbitrary point; the file is reopened and every
 * acknowledged event must be there (or must have been handed to the send before the kill).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Outbox, OutboxLockedError, type OutboxRecord } from "../../src/outbox/mod.ts";

const FIXTURE = fileURLToPath(new URL("../fixtures/outbox_child.ts", import.meta.url));
const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** Spawns the child; the caller must kill it and await `done`. */
function spawnChild(args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", FIXTURE, ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  return { child, stderr };
}

/** Reads the child's complete stdout lines, calling `onLine`; a cut-off last line is dropped. */
async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of stream) {
    buffer += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffer.indexOf("\n")) >= 0) {
      onLine(buffer.slice(0, end));
      buffer = buffer.slice(end + 1);
    }
  }
}

/**
 * Runs the child in `mode` and SIGKILLs it `delayMs` after it is ready, from a timer: the
 * kill lands wherever the child happens to be (in SQLite, in a print, in the pump), since
 * the parent keeps draining the pipe and the child never waits on it for long.
 */
async function runUntilKilled(path: string, mode: string, firstN: number, delayMs: number) {
  const { child, stderr } = spawnChild([path, mode, String(firstN)]);
  const lines: string[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  let killed = false;
  const kill = () => {
    if (killed) return;
    killed = true;
    child.kill("SIGKILL");
  };
  try {
    await readLines(child.stdout, (line) => {
      lines.push(line);
      if (line === "ready") timer = setTimeout(kill, delayMs);
    });
  } finally {
    clearTimeout(timer);
    kill();
  }
  const status = await child.status;
  const errors = await stderr;
  assert.equal(status.signal, "SIGKILL", `the child exited by itself: ${errors}`);
  assert.ok(lines.includes("ready"), `the child never got ready: ${errors}`);
  return lines;
}

function allRecords(path: string): OutboxRecord[] {
  using outbox = new Outbox({ path, agentId: "checker" });
  const records = outbox.list({ limit: 1_000_000 });
  assert.equal(records.length, outbox.stats().pending);
  assert.equal(new Set(records.map((r) => r.idempotencyKey)).size, records.length);
  return records;
}

// Kill points, in ms after the child is ready: from "at once" to "well into it".
const APPEND_KILLS = [0, 9, 31, 64, 110, 170];
const COALESCE_KILLS = [2, 13, 37, 52, 71, 95, 118, 181];

Deno.test("crash: every acknowledged append event survives SIGKILL, across six kills", async () => {
  const dir = await Deno.makeTempDir({ prefix: "outbox_crash_" });
  const path = join(dir, "outbox.sqlite");
  try {
    const acked = new Map<number, number>(); // seq -> n
    const sent = new Set<number>();
    for (const [run, kill] of APPEND_KILLS.entries()) {
      const lines = await runUntilKilled(path, "append", run * 1_000_000, kill);
      for (const line of lines) {
        const [what, seq, n] = line.split(" ");
        if (what === "ack") {
          assert.equal(acked.has(Number(seq)), false, `seq ${seq} acknowledged twice`);
          acked.set(Number(seq), Number(n));
        }
        if (what === "sent") sent.add(Number(seq));
      }
      const inFile = new Map(allRecords(path).map((r) => [r.seq, r]));
      const lost: number[] = [];
      for (const [seq, n] of acked) {
        const record = inFile.get(seq);
        if (record) assert.deepEqual(record.payload, { n }, `seq ${seq} holds another event`);
        else if (!sent.has(seq)) lost.push(seq);
      }
      assert.deepEqual(lost, [], `run ${run}: acknowledged events lost`);
    }
    assert.ok(acked.size > 100, `only ${acked.size} events were acknowledged`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("crash: the latest coalesced state and every append sharing its key survive SIGKILL", async () => {
  const dir = await Deno.makeTempDir({ prefix: "outbox_crash_" });
  const path = join(dir, "outbox.sqlite");
  try {
    const latest = new Map<string, number>(); // key -> highest acknowledged coalesce n
    const appends = new Map<number, { key: string; n: number }>();
    const sent = new Set<number>();
    const sentState = new Map<string, number>(); // key -> highest n seen sent
    const bySeq = new Map<number, { key: string; n: number; mode: string }>();
    for (const [run, kill] of COALESCE_KILLS.entries()) {
      const lines = await runUntilKilled(path, "coalesce", run * 1_000_000, kill);
      for (const line of lines) {
        const [what, seq, n, key, mode] = line.split(" ");
        if (what === "ack" && key && mode) {
          bySeq.set(Number(seq), { key, n: Number(n), mode });
          if (mode === "coalesce") latest.set(key, Math.max(latest.get(key) ?? -1, Number(n)));
          else appends.set(Number(seq), { key, n: Number(n) });
        }
        if (what === "sent") {
          sent.add(Number(seq));
          const event = bySeq.get(Number(seq));
          if (event?.mode === "coalesce") {
            sentState.set(event.key, Math.max(sentState.get(event.key) ?? -1, event.n));
          }
        }
      }
      const records = allRecords(path);
      // The latest acknowledged state of each key is in the file (or a newer one), or was sent.
      for (const [key, n] of latest) {
        const stored = records
          .filter((r) => r.mode === "coalesce" && r.dedupeKey === key)
          .map((r) => (r.payload as { n: number }).n);
        const best = Math.max(-1, ...stored, sentState.get(key) ?? -1);
        assert.ok(best >= n, `run ${run}: key ${key} lost state ${n} (best ${best})`);
        // Coalescing kept at most the in-flight row and the newest one.
        assert.ok(stored.length <= 2, `run ${run}: ${stored.length} rows for ${key}`);
      }
      // Append events sharing a coalesce key are never deleted by coalescing.
      const inFile = new Set(records.map((r) => r.seq));
      const lost = [...appends.keys()].filter((seq) => !inFile.has(seq) && !sent.has(seq));
      assert.deepEqual(lost, [], `run ${run}: append events lost`);
    }
    assert.equal(latest.size, 4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("defect 7: another process's outbox is refused with that process's pid", async () => {
  const dir = await Deno.makeTempDir({ prefix: "outbox_lock_" });
  const path = join(dir, "outbox.sqlite");
  const { child, stderr } = spawnChild([path, "hold"]);
  try {
    const reader = child.stdout.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    assert.equal(first.trim(), "ready");
    reader.releaseLock();
    const started = performance.now();
    assert.throws(() => new Outbox({ path, agentId: "second" }), (error: unknown) => {
      assert.ok(error instanceof OutboxLockedError);
      assert.equal(error.pid, child.pid);
      assert.match(error.message, new RegExp(`in use by process ${child.pid};`));
      return true;
    });
    // Fail fast: well under a second (not a timed assertion of speed, a bound on hanging).
    assert.ok(performance.now() - started < 5_000);
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await child.stdout.cancel().catch(() => {});
    await stderr;
  }
  try {
    // The kernel released the lock with the process: the file opens, the event is there.
    using outbox = new Outbox({ path, agentId: "second" });
    assert.deepEqual(outbox.list().map((r) => r.kind), ["held"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("crash: with another process locking the file on and off, every durable event survives SIGKILL", async () => {
  const dir = await Deno.makeTempDir({ prefix: "outbox_crash_" });
  const path = join(dir, "outbox.sqlite");
  try {
    // Create the file first: the locker opens an existing outbox.
    new Outbox({ path, agentId: "setup" }).close();
    const acked = new Map<number, number>(); // seq -> n
    const sent = new Set<number>();
    let held = 0;
    for (const [run, kill] of [40, 90, 150, 230].entries()) {
      // Locked 30 ms, free 15 ms, and so on, while the child enqueues and delivers.
      const { child: flapper, stderr: flapErrors } = spawnChild([path, "flap", "30"]);
      const reader = flapper.stdout.getReader();
      assert.equal(new TextDecoder().decode((await reader.read()).value).trim(), "ready");
      reader.releaseLock();
      let lines: string[];
      try {
        lines = await runUntilKilled(path, "append", run * 1_000_000, kill);
      } finally {
        flapper.kill("SIGKILL");
        await flapper.status;
        await flapper.stdout.cancel().catch(() => {});
        await flapErrors;
      }
      for (const line of lines) {
        const [what, seq, n] = line.split(" ");
        if (what === "ack") {
          assert.equal(acked.has(Number(seq)), false, `seq ${seq} acknowledged twice`);
          acked.set(Number(seq), Number(n));
        }
        if (what === "sent") sent.add(Number(seq));
        if (what === "held") held++;
      }
      const inFile = new Map(allRecords(path).map((r) => [r.seq, r]));
      const lost: number[] = [];
      for (const [seq, n] of acked) {
        const record = inFile.get(seq);
        if (record) assert.deepEqual(record.payload, { n }, `seq ${seq} holds another event`);
        else if (!sent.has(seq)) lost.push(seq);
      }
      assert.deepEqual(lost, [], `run ${run}: durable events lost`);
    }
    assert.ok(acked.size > 100, `only ${acked.size} events were acknowledged`);
    assert.ok(held > 100, `only ${held} events waited for the lock`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
