import assert from "node:assert/strict";
import { join } from "node:path";
import {
  addSecret,
  clearSecrets,
  configureLogging,
  getLogger,
  getLogLevel,
  logFileName,
  onLogEntry,
  parseLogLevel,
  safeLogName,
  setLogLevel,
} from "../src/logger.ts";

async function withLogging(
  options: {
    format?: "text" | "json";
    maxBytes?: number;
    maxFiles?: number;
    level?: "debug" | "info";
  },
  fn: (dir: string, file: string) => void | Promise<void>,
) {
  const dir = await Deno.makeTempDir();
  const handle = configureLogging({
    logDir: dir,
    agentId: "agent/7",
    level: options.level ?? "info",
    ...options,
  });
  try {
    await fn(dir, handle.logFile);
  } finally {
    handle.close();
    clearSecrets();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("logger: agent ids are sanitized and capped at 180 characters", () => {
  assert.equal(safeLogName("a b/c:d_e.f-g"), "a_b_c_d_e.f-g");
  assert.equal(safeLogName("x".repeat(300)).length, 180);
  assert.equal(logFileName("team/alice"), "session-mirror-team_alice.log");
});

Deno.test("logger: parseLogLevel accepts the five levels only", () => {
  assert.equal(parseLogLevel(" WARN "), "warn");
  assert.equal(parseLogLevel("fatal"), "fatal");
  assert.equal(parseLogLevel("trace"), undefined);
  assert.equal(parseLogLevel(undefined), undefined);
});

Deno.test("logger: lines are [ISO] LEVEL [component] message, one per record, no ANSI", async () => {
  await withLogging({}, async (_dir, file) => {
    assert.equal(file.endsWith("session-mirror-agent_7.log"), true);
    const log = getLogger("outbox");
    log.info("first line\nsecond line");
    log.warn("\x1b[31mred\x1b[0m text");
    log.fatal("it {broke} badly");
    const lines = (await Deno.readTextFile(file)).trimEnd().split("\n");
    assert.equal(lines.length, 3);
    assert.match(
      lines[0]!,
      /^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] INFO {2}\[outbox\] first line ⏎ second line$/,
    );
    assert.match(lines[1]!, /\] WARN {2}\[outbox\] red text$/);
    assert.match(lines[2]!, /\] FATAL \[outbox\] it \{broke\} badly$/);
  });
});

Deno.test("logger: --log-format json writes one JSON object per line", async () => {
  await withLogging({ format: "json" }, async (_dir, file) => {
    getLogger("bus").error("lost\nconnection");
    const line = (await Deno.readTextFile(file)).trimEnd();
    const record = JSON.parse(line);
    assert.equal(record.level, "error");
    assert.equal(record.component, "bus");
    assert.equal(record.message, "lost ⏎ connection");
    assert.ok(!Number.isNaN(Date.parse(record.time)));
  });
});

Deno.test("logger: the level is a run-time filter, changed without reconfiguring", async () => {
  await withLogging({}, async (_dir, file) => {
    const log = getLogger("control");
    log.debug("hidden");
    assert.equal(setLogLevel("debug"), "info");
    assert.equal(getLogLevel(), "debug");
    log.debug("shown");
    setLogLevel("error");
    log.warn("hidden too");
    log.error("shown too");
    const text = await Deno.readTextFile(file);
    assert.equal(text.includes("hidden"), false);
    assert.match(text, /DEBUG \[control\] shown/);
    assert.match(text, /ERROR \[control\] shown too/);
  });
});

Deno.test("logger: secrets and bearer tokens are redacted from every record", async () => {
  await withLogging({}, async (_dir, file) => {
    const seen: string[] = [];
    const off = onLogEntry((e) => seen.push(e.message));
    addSecret("s3cr3t-control-value");
    getLogger("relay").info(
      "calling with s3cr3t-control-value and Authorization: Bearer abc.def-123",
    );
    off();
    const text = await Deno.readTextFile(file);
    assert.equal(text.includes("s3cr3t-control-value"), false);
    assert.equal(text.includes("abc.def-123"), false);
    assert.match(text, /calling with \[redacted\] and Authorization: Bearer \[redacted\]/);
    assert.equal(seen.join("").includes("s3cr3t"), false);
  });
});

Deno.test("logger: files rotate by size and keep a bounded number", async () => {
  await withLogging({ maxBytes: 2_000, maxFiles: 3 }, async (dir) => {
    const log = getLogger("mirror");
    for (let i = 0; i < 200; i++) log.info(`record ${i} ${"x".repeat(80)}`);
    const files = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.ok(files.length >= 2, `rotation happened: ${files}`);
    assert.ok(files.length <= 3, `at most 3 files kept: ${files}`);
    for (const name of files) {
      const stat = Deno.statSync(join(dir, name));
      assert.ok(stat.size <= 2_200, `${name} stays near the bound`);
      assert.equal(stat.mode! & 0o777, 0o600, `${name} is private`);
    }
    const live = await Deno.readTextFile(join(dir, "session-mirror-agent_7.log"));
    assert.match(live, /record 199 /);
  });
});

Deno.test("logger: when the file cannot be written, error and fatal still reach stderr", async () => {
  const dir = await Deno.makeTempDir();
  const blocked = join(dir, "not-a-dir");
  await Deno.writeTextFile(blocked, "a file where the log dir should be");
  const fallback: string[] = [];
  const handle = configureLogging({
    logDir: blocked,
    agentId: "a",
    level: "debug",
    fallback: (line) => fallback.push(line),
  });
  try {
    assert.ok(handle.fileError, "the open failure is reported");
    const log = getLogger("runner");
    log.info("quiet");
    log.error("loud");
    log.fatal("louder");
    const text = fallback.join("");
    assert.match(text, /ERROR \[logger\] cannot open log file/);
    assert.match(text, /ERROR \[runner\] loud/);
    assert.match(text, /FATAL \[runner\] louder/);
    assert.equal(text.includes("quiet"), false);
  } finally {
    handle.close();
    await Deno.remove(dir, { recursive: true });
  }
});
