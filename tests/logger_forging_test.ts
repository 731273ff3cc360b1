/**
 * The log against forged lines (issue 16) and the operator's log options (issue 17): no control,
 * separator or bidi character reaches a text or JSON line raw; `--log-file -` writes JSON lines
 * with agentId and pid to stderr; rotation follows the config; redaction hides values, not words.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  addSecret,
  clearSecrets,
  configureLogging,
  getLogger,
  type LoggingHandle,
  redact,
} from "../src/logger.ts";
import { withHome } from "./support/home.ts";

/** Every character escapeText must neutralise, one of each kind the issue lists and more. */
const UNSAFE: string[] = [
  ...Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)),
  "\x7f",
  ...Array.from({ length: 32 }, (_, i) => String.fromCharCode(0x80 + i)),
  "\u2028",
  "\u2029",
  ..."\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
];
const HOSTILE = `start${UNSAFE.join("x")}end \x1b]0;title\x07 \x1b[2J \u009b31m`;

/** The characters of `text` that are unsafe, except the line ends between records. */
function rawUnsafe(text: string): string[] {
  const found = new Set<string>();
  for (const line of text.split("\n")) {
    for (const c of line) if (UNSAFE.includes(c)) found.add(c);
  }
  return [...found].map((c) => `U+${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

async function withLog(
  options: { format: "text" | "json"; logFile?: string },
  fn: (file: string, stderr: string[]) => void | Promise<void>,
): Promise<void> {
  await withHome("arr-log-", async (dir) => {
    const stderr: string[] = [];
    const handle: LoggingHandle = configureLogging({
      logDir: dir,
      agentId: "forge",
      level: "debug",
      format: options.format,
      ...(options.logFile ? { logFile: options.logFile } : {}),
      stderr: (line) => stderr.push(line),
    });
    try {
      await fn(handle.logFile, stderr);
    } finally {
      handle.close();
      clearSecrets();
    }
  });
}

Deno.test("log forging: no control, separator or bidi character reaches a text line raw", async () => {
  await withLog({ format: "text" }, async (file) => {
    const log = getLogger("relay");
    log.info(HOSTILE);
    log.warn("fields too", { body: HOSTILE, [`k${"\u2028"}ey`]: 1, nested: { v: HOSTILE } });
    const text = await Deno.readTextFile(file);
    assert.deepEqual(rawUnsafe(text), []);
    const lines = text.trimEnd().split("\n");
    assert.equal(lines.length, 2, "each record is one line: no forged line");
    assert.match(lines[0]!, /\] INFO {2}\[relay\] start\\u\{0\}x\\u\{1\}x/);
    assert.match(lines[0]!, /\\u\{85\}x/, "NEL is shown, not obeyed");
    assert.match(lines[0]!, /\\u\{2028\}x\\u\{2029\}x\\u\{202a\}/, "LS, PS, bidi shown");
    assert.match(lines[1]!, /WARN {2}\[relay\] fields too body="start\\u\{0\}/);
    assert.equal(new TextEncoder().encode(text).includes(0), false, "grep sees text, no NUL");
  });
});

Deno.test("log forging: JSON lines keep the value but hold no raw control character", async () => {
  await withLog({ format: "json" }, async (file) => {
    getLogger("bus").error(HOSTILE, { body: HOSTILE, seq: 7 });
    const text = await Deno.readTextFile(file);
    assert.deepEqual(rawUnsafe(text), []);
    assert.equal(text.trimEnd().split("\n").length, 1);
    const record = JSON.parse(text);
    assert.equal(record.body, HOSTILE, "a field keeps its exact value");
    assert.equal(record.seq, 7);
    assert.ok(String(record.message).startsWith("start"));
  });
});

Deno.test("log: --log-file - writes JSON lines with agentId, pid, component and fields to stderr", async () => {
  await withLog({ format: "json", logFile: "-" }, (file, stderr) => {
    assert.equal(file, "-");
    getLogger("outbox").info("event stored", { seq: 12, kind: "message" });
    assert.equal(stderr.length, 1);
    const record = JSON.parse(stderr[0]!);
    assert.equal(record.agentId, "forge");
    assert.equal(record.pid, Deno.pid);
    assert.equal(record.component, "outbox");
    assert.equal(record.level, "info");
    assert.equal(record.message, "event stored");
    assert.equal(record.seq, 12);
    assert.equal(record.kind, "message");
    assert.ok(!Number.isNaN(Date.parse(record.time)));
  });
});

Deno.test("log: a run config's --log-file, --log-max-bytes and --log-files are honoured", async () => {
  await withHome("arr-log-", async (dir) => {
    const logFile = join(dir, "custom", "agent.log");
    const handle = configureLogging({
      logDir: join(dir, "unused"),
      agentId: "rot",
      logLevel: "info",
      logFormat: "text",
      logFile,
      logMaxBytes: 1_500,
      logFiles: 2,
    });
    try {
      assert.equal(handle.logFile, logFile);
      const log = getLogger("mirror");
      for (let i = 0; i < 100; i++) log.info(`record ${i} ${"y".repeat(80)}`);
      const files = [...Deno.readDirSync(join(dir, "custom"))].map((e) => e.name).sort();
      assert.deepEqual(files, ["agent.log", "agent.log.1"]);
      for (const name of files) {
        assert.ok(Deno.statSync(join(dir, "custom", name)).size <= 1_700, `${name} near the bound`);
      }
      assert.match(await Deno.readTextFile(logFile), /record 99 /);
    } finally {
      handle.close();
    }
  });
});

Deno.test("redaction hides secret values and bearer credentials, never ordinary words", () => {
  try {
    addSecret("s3cr3t-value-42");
    assert.equal(redact("missing bearer token"), "missing bearer token");
    assert.equal(redact("the relay token was refused"), "the relay token was refused");
    assert.equal(redact("no secret given"), "no secret given");
    assert.equal(redact("Authorization: Bearer abc.def-123"), "Authorization: Bearer [redacted]");
    assert.equal(
      redact("authorization: bearer 0123456789abcdef"),
      "authorization: bearer [redacted]",
    );
    assert.equal(redact("Bearer AbCdEfGhIj"), "Bearer [redacted]");
    assert.equal(redact("Bearer averyveryverylongword"), "Bearer [redacted]");
    assert.equal(redact("token=s3cr3t-value-42 ok"), "token=[redacted] ok");
  } finally {
    clearSecrets();
  }
});
