/**
 * Help and version (issue 17): `--help` names every environment variable the runner reads and
 * every `run` flag; `help <unknown>` exits 2; `--version` shows the commit and Deno's version;
 * `deno task demo --help` prints the demo's usage, `--keep` included, with no stack trace.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { HELP } from "../../src/cli/help.ts";
import { buildCommit, headCommit } from "../../src/cli/build_info.ts";
import { freshBundle } from "../../src/bundle/mod.ts";
import { ENV_VARS, RUN_FLAGS } from "../../src/config/mod.ts";
import { withHome } from "../support/home.ts";
import { runCli } from "./cli_process.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

Deno.test("help: the environment section names exactly the variables the runner reads", () => {
  const section = HELP.split("\nEnvironment")[1]!.split("\n\n")[0]!;
  const named = new Set([...section.matchAll(/^ {2}([A-Z][A-Z0-9_]+)/gm)].map((m) => m[1]!));
  assert.deepEqual([...named].sort(), [...ENV_VARS].sort());
});

Deno.test("help: every run flag is documented", () => {
  for (const flag of Object.keys(RUN_FLAGS)) {
    assert.match(HELP, new RegExp(`--${flag}\\b`), `--${flag} is in --help`);
  }
});

Deno.test("help: help <unknown> exits 2 with one line; help <command> shows its usage", async () => {
  const unknown = await runCli(["help", "nope"], {});
  assert.equal(unknown.code, 2);
  assert.equal(unknown.stdout, "");
  assert.equal(
    unknown.stderr,
    'agent-relay-runner: no help for "nope": no such command (try --help)\n',
  );
  for (const command of ["status", "attach", "outbox", "send"]) {
    const out = await runCli(["help", command], {});
    assert.equal(out.code, 0, `${command}: ${out.stderr}`);
    assert.match(out.stdout, /Usage: agent-relay-runner /);
  }
  const member = await runCli(["help", "constructor"], {});
  assert.equal(member.code, 2, "an Object member is no command");
});

Deno.test("version: the version, the commit (from the repository) and Deno's version", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../../deno.json", import.meta.url)));
  const git = await new Deno.Command("git", { args: ["rev-parse", "HEAD"], cwd: ROOT }).output();
  const head = new TextDecoder().decode(git.stdout).trim();
  assert.equal(buildCommit(ROOT), head);
  // From the bundle (after `deno task build`, as in CI) the line says so.
  const bundled = freshBundle(ROOT) ? ", bundled" : "";
  for (const flag of ["--version", "version", "-V"]) {
    const out = await runCli([flag], {});
    assert.equal(out.code, 0);
    assert.equal(
      out.stdout,
      `agent-relay-runner ${config.version} (commit ${
        head.slice(0, 12)
      }, deno ${Deno.version.deno}${bundled})\n`,
    );
  }
});

Deno.test("version: a baked BUILD_COMMIT wins; packed refs are read; no repository is unknown", async () => {
  await withHome("arr-version-", async (dir) => {
    assert.equal(buildCommit(dir), "unknown");
    const id = "0123456789abcdef0123456789abcdef01234567";
    await Deno.mkdir(`${dir}/.git`);
    await Deno.writeTextFile(`${dir}/.git/HEAD`, "ref: refs/heads/main\n");
    await Deno.writeTextFile(`${dir}/.git/packed-refs`, `# pack-refs\n${id} refs/heads/main\n`);
    assert.equal(headCommit(`${dir}/.git`), id);
    const baked = "fedcba9876543210fedcba9876543210fedcba98";
    await Deno.writeTextFile(`${dir}/BUILD_COMMIT`, `${baked}\n`);
    assert.equal(buildCommit(dir), baked);
  });
});

Deno.test("demo: --help prints the usage with --keep; a bad flag is one line and exit 2", async () => {
  const run = async (args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--frozen", `${ROOT}scripts/demo.ts`, ...args],
      env: { NO_COLOR: "1" },
    }).output();
    const decoder = new TextDecoder();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  };
  const help = await run(["--help"]);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^Usage: deno task demo \[--port N\] \[--keep\]/);
  assert.match(help.stdout, /--keep +keep the demo's temp base dir/);
  assert.equal(help.stderr, "");
  const bad = await run(["--bogus"]);
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr.trim().split("\n").length, 1, bad.stderr);
  assert.doesNotMatch(bad.stderr, /at .*\.ts:\d+/, "no stack trace");
});
