import assert from "node:assert/strict";
import { parseArgs } from "node:util";
import { type FlagSpecs, parseFlags, UsageError } from "../../src/config/mod.ts";

const SPECS: FlagSpecs = {
  "agent-id": { type: "string" },
  "relay-url": { type: "string", short: "r" },
  json: { type: "boolean" },
  all: { type: "boolean", short: "a" },
  help: { type: "boolean", short: "h" },
};

const ACCEPTED = [
  [],
  ["--agent-id", "a1"],
  ["--agent-id=a1", "--json"],
  ["--agent-id=", "x"],
  ["--agent-id=-dash"],
  ["--agent-id", "a", "--agent-id", "b"],
  ["pos", "--json", "other"],
  ["-h"],
  ["-ah"],
  ["-r", "http://x"],
  ["-rhttp://x"],
  ["-ar", "v"],
  ["-"],
  ["--agent-id", "-"],
  ["--relay-url", "a=b"],
];

Deno.test("flags: what parseArgs (strict, positionals allowed) accepts is parsed the same way", () => {
  for (const args of ACCEPTED) {
    const ours = parseFlags(args, SPECS, { command: "test" });
    const node = parseArgs({ args, options: SPECS, strict: true, allowPositionals: true });
    assert.deepEqual({ ...ours.values }, { ...node.values }, JSON.stringify(args));
    assert.deepEqual(ours.positionals, node.positionals, JSON.stringify(args));
    assert.deepEqual(ours.rest, []);
  }
});

Deno.test("flags: what parseArgs refuses is one usage error line naming the flag", () => {
  const refused: [string[], RegExp][] = [
    [["--bogus"], /^unknown flag --bogus for "test" \(see --help\)$/],
    [["--bogus=1"], /^unknown flag --bogus for "test"/],
    [["-x"], /^unknown flag -x for "test"/],
    [["-hx"], /^unknown flag -x/],
    [["--agent-id"], /^flag --agent-id needs a value$/],
    [["-r"], /^flag -r needs a value$/],
    [
      ["--agent-id", "--json"],
      /^flag --agent-id needs a value, not the flag --json .*--agent-id=--json/,
    ],
    [["--json=yes"], /^flag --json takes no value$/],
    [["--constructor"], /^unknown flag --constructor/],
    [["--__proto__", "x"], /^unknown flag --__proto__/],
  ];
  for (const [args, message] of refused) {
    assert.throws(() => parseArgs({ args, options: SPECS, strict: true, allowPositionals: true }));
    assert.throws(() => parseFlags(args, SPECS, { command: "test" }), (error) => {
      assert.ok(error instanceof UsageError);
      assert.match(error.message, message);
      return true;
    }, JSON.stringify(args));
  }
});

Deno.test("flags: everything after the first -- is passed through untouched", () => {
  const parsed = parseFlags(["--json", "--", "--bogus", "-h", "--"], SPECS, { command: "test" });
  assert.deepEqual(parsed.values, { json: true });
  assert.deepEqual(parsed.rest, ["--bogus", "-h", "--"]);
  assert.throws(
    () => parseFlags(["--agent-id", "--"], SPECS, { command: "test" }),
    /needs a value/,
  );
});
