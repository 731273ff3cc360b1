import assert from "node:assert/strict";
import { withHome } from "../support/home.ts";
import { runSandboxed } from "../support/run_main.ts";

const RELAY = "http://127.0.0.1:9";

/** Runs `main.ts ARGS` under the sandbox in a fresh home. */
function usage(args: string[], env: Record<string, string> = {}) {
  return withHome(
    "arr-cli-",
    (home) => runSandboxed(args, { env: { AGENT_RELAY_HOME: home, ...env } }),
  );
}

function oneLine(stderr: string): string {
  const lines = stderr.split("\n").filter((l) => l.trim() !== "");
  assert.deepEqual(lines.length, 1, `expected one line on stderr, got: ${stderr}`);
  return lines[0]!;
}

const BAD: Array<[string, string[], RegExp, Record<string, string>?]> = [
  ["an unknown flag", ["run", "--agent-id", "a", "--relay-url", RELAY, "--bogus"], /--bogus/],
  ["a missing --agent-id", ["run", "--relay-url", RELAY], /--agent-id/],
  [
    "a bad --log-level",
    ["run", "--agent-id", "a", "--relay-url", RELAY, "--log-level", "loud"],
    /"loud"/,
  ],
  [
    "a bad AGENT_RELAY_LOG_LEVEL",
    ["run", "--agent-id", "a", "--relay-url", RELAY],
    /AGENT_RELAY_LOG_LEVEL "shout"/,
    {
      AGENT_RELAY_LOG_LEVEL: "shout",
    },
  ],
  [
    "a non-numeric port",
    ["run", "--agent-id", "a", "--relay-url", RELAY, "--control-port", "http"],
    /"http"/,
  ],
  ["a port above 65535", [
    "run",
    "--agent-id",
    "a",
    "--relay-url",
    RELAY,
    "--control-port",
    "70000",
  ], /"70000"/],
  ["a relay URL on a remote host", [
    "run",
    "--agent-id",
    "a",
    "--relay-url",
    "http://relay.example.invalid",
  ], /relay\.example\.invalid/],
  [
    "a relay URL that is not http",
    ["run", "--agent-id", "a", "--relay-url", "ftp://127.0.0.1/"],
    /ftp:/,
  ],
  [
    "a relay URL that is not a URL",
    ["run", "--agent-id", "a", "--relay-url", "not a url"],
    /"not a url"/,
  ],
  [
    "an unknown provider",
    ["run", "--agent-id", "a", "--relay-url", RELAY, "--provider", "gpt"],
    /"gpt"/,
  ],
  ["an unknown command", ["launch"], /"launch"/],
  ["a flag without its value", ["run", "--relay-url", RELAY, "--agent-id"], /--agent-id/],
];

for (const [what, args, pattern, env] of BAD) {
  Deno.test(`cli: ${what} exits 2 with one line naming it`, async () => {
    const out = await usage(args, env);
    assert.deepEqual(out.code, 2, out.stderr);
    assert.match(oneLine(out.stderr), pattern);
    assert.match(out.stderr, /^agent-relay-runner: /);
  });
}

Deno.test("cli: --help and help print usage with examples and exit 0", async () => {
  for (const args of [["--help"], ["help"], ["run", "--help"]]) {
    const out = await usage(args);
    assert.deepEqual(out.code, 0, out.stderr);
    assert.match(out.stdout, /Usage:/);
    assert.match(out.stdout, /Examples:/);
    assert.match(out.stdout, /--agent-id ID/);
  }
});

Deno.test("cli: version prints the version from deno.json", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../../deno.json", import.meta.url)));
  const out = await usage(["version"]);
  assert.deepEqual(out.code, 0);
  const version = config.version.replaceAll(".", "\\.");
  assert.match(out.stdout.trim(), new RegExp(`^agent-relay-runner ${version}( \\(.*\\))?$`));
});

Deno.test("cli: no command prints usage and exits 2", async () => {
  const out = await usage([]);
  assert.deepEqual(out.code, 2);
  assert.ok(out.stdout.includes("Usage:"));
});
