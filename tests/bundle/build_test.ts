import assert from "node:assert/strict";
import { join } from "node:path";
import { buildBundle, literalImports, sourceFiles } from "../../scripts/bundle.ts";
import { APP_DIR } from "../../scripts/sandbox.ts";
import { BUNDLE_DIR, freshBundle } from "../../src/bundle/mod.ts";
import { startDevRelay } from "../../src/dev_relay/mod.ts";
import { bundledEntries, ENTRY_NAMES, sourceEntries } from "../../src/entry/mod.ts";
import { runSandboxed } from "../support/run_main.ts";
import { startRunner } from "../support/runner_process.ts";

Deno.test("literalImports: a lazy import becomes a literal import(), in either layout", () => {
  assert.equal(
    literalImports(
      `const m = await importLazily<typeof import("./a.ts")>("./a.ts", import.meta.url);`,
    ),
    `const m = await import("./a.ts");`,
  );
  assert.equal(
    literalImports(
      `(await importLazily<typeof import("../b.ts")>(\n  "../b.ts",\n  import.meta.url,\n))`,
    ),
    `(await import("../b.ts"))`,
  );
});

Deno.test("literalImports: refuses a lazy import whose module it cannot name", () => {
  assert.throws(
    () => literalImports(`importLazily(specifier, import.meta.url)`, "src/x.ts"),
    /src\/x\.ts: an importLazily call is not importLazily\("\.\/literal\.ts", import\.meta\.url\)/,
  );
  assert.throws(() => literalImports(`importLazily("./a.ts", base)`, "src/x.ts"));
  // Its definition is the one file that may call it otherwise.
  const definition = `export function importLazily<T>(specifier: string, base: string | URL) {}`;
  assert.equal(literalImports(definition, "src/util/import_lazily.ts"), definition);
});

Deno.test("literalImports: every lazy import in the program's source has a literal module", () => {
  for (const path of sourceFiles(APP_DIR).filter((f) => f.endsWith(".ts"))) {
    const out = literalImports(Deno.readTextFileSync(join(APP_DIR, path)), path);
    if (path !== "src/util/import_lazily.ts") assert.doesNotMatch(out, /importLazily\s*[<(]/, path);
  }
});

Deno.test("entries: the bundle has one module per entry, named as in the source", () => {
  const root = new URL("file:///app/");
  const source = sourceEntries(root);
  const bundled = bundledEntries(new URL(`${BUNDLE_DIR}/`, root));
  assert.equal(source.launcher.href, "file:///app/src/entry/launcher.ts");
  assert.equal(bundled.launcher.href, "file:///app/dist/bundle/launcher.js");
  assert.equal(source.workers["dev-relay"].href, "file:///app/src/entry/dev_relay.ts");
  assert.equal(bundled.workers.run.href, "file:///app/dist/bundle/run.js");
  assert.deepEqual(ENTRY_NAMES, ["launcher", "run", "outbox", "send", "dev_relay"]);
});

/** Starts a run of `main`, reads its /metrics once it answers, stops it; returns the metrics. */
async function runOnce(
  relay: { url: string; token: string },
  options: { home: string; main: string; agentId: string },
): Promise<string> {
  const runner = startRunner(relay, {
    agentId: options.agentId,
    home: options.home,
    providerArgs: ["bash", "-c", "cat >/dev/null"],
    script: options.main,
  });
  try {
    const { port, secret } = await runner.control();
    const response = await fetch(`http://127.0.0.1:${port}/metrics`, {
      headers: { authorization: `Bearer ${secret}` },
    });
    assert.equal(response.status, 200);
    return await response.text();
  } finally {
    assert.equal(await runner.stop(), 0, (await runner.output).stderr);
  }
}

/** A copy of the program (what a start reads) in a temp dir. */
function copyProgram(): string {
  const root = Deno.makeTempDirSync({ prefix: "bundle-build-" });
  for (const file of ["main.ts", ...sourceFiles(APP_DIR)]) {
    const target = join(root, file);
    Deno.mkdirSync(join(target, ".."), { recursive: true });
    Deno.copyFileSync(join(APP_DIR, file), target);
  }
  return root;
}

Deno.test({
  name: "build: a start loads the bundle while it is fresh, and the source files once one changes",
  async fn() {
    const root = copyProgram();
    const home = Deno.makeTempDirSync({ prefix: "bundle-home-" });
    const relay = await startDevRelay({ port: 0 });
    try {
      const main = join(root, "main.ts");
      const env = { AGENT_RELAY_HOME: home };
      const lines: string[] = [];
      await buildBundle({ root, log: (line) => lines.push(line) });
      assert.match(lines.join("\n"), /bundled \d+ source modules into .*launcher\.js/);
      for (const name of ENTRY_NAMES) Deno.statSync(join(root, BUNDLE_DIR, `${name}.js`));
      assert.equal(freshBundle(root), true);

      const version = await runSandboxed(["version"], { env, script: main });
      assert.equal(version.code, 0, version.stderr);
      assert.match(version.stdout, /^agent-relay-runner \S+ \(commit \S+, deno \S+, bundled\)$/m);
      // A usage error in a Worker from the bundle: one line, exit 2.
      const bad = await runSandboxed(["send", "--bogus"], { env, script: main });
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /unknown flag --bogus/);

      // A whole run from the bundle: its Worker says so in /metrics, and it stops cleanly.
      assert.match(await runOnce(relay, { home, main, agentId: "bundled" }), /bundled="true"/);

      // A module of the bundle gone: not fresh, so the source files run (never a crash).
      const chunk = [...Deno.readDirSync(join(root, BUNDLE_DIR))].find((e) =>
        e.name.startsWith("chunk-")
      );
      assert.ok(chunk, "the launcher has lazily loaded chunks");
      Deno.removeSync(join(root, BUNDLE_DIR, chunk.name));
      assert.equal(freshBundle(root), false);
      await buildBundle({ root });
      assert.equal(freshBundle(root), true);

      // An edit makes the bundle stale: the same program runs from its source files, in the
      // launcher and in the Worker.
      Deno.writeTextFileSync(join(root, "src", "version.ts"), "// edited\n", { append: true });
      assert.equal(freshBundle(root), false);
      const fromSource = await runSandboxed(["version"], { env, script: main });
      assert.equal(fromSource.code, 0, fromSource.stderr);
      assert.match(fromSource.stdout, /^agent-relay-runner \S+ \(commit \S+, deno \S+\)$/m);
      const badFromSource = await runSandboxed(["send", "--bogus"], { env, script: main });
      assert.equal(badFromSource.code, 2);
      assert.match(badFromSource.stderr, /unknown flag --bogus/);
      assert.match(await runOnce(relay, { home, main, agentId: "source" }), /bundled="false"/);
    } finally {
      await relay.close();
      Deno.removeSync(root, { recursive: true });
      Deno.removeSync(home, { recursive: true });
    }
  },
});
