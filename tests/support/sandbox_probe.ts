/**
 * Probes of the sandbox: a script that runs itself inside the sandbox's Worker with exactly the
 * grants a real `run` with the same arguments gets (computed by the launcher's own functions),
 * tries things there and prints one JSON line of what each attempt came to.
 *
 * @module
 */
import { APP_DIR } from "../../scripts/sandbox.ts";
import { ENV_VARS, prepareDirs, resolveRunConfig } from "../../src/config/mod.ts";
import { inWorker, runGrants, runInWorker, serveWorker } from "../../src/sandbox/mod.ts";

/** What an attempt came to: `ok`, or the error's `Name: message`. */
export async function attempt(fn: () => unknown): Promise<string> {
  try {
    const value = await fn();
    if (value && typeof value === "object" && "close" in value) {
      (value as { close(): void }).close();
    }
    return "ok";
  } catch (e) {
    return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  }
}

/**
 * The probe's entry: outside the Worker, `Deno.args` is a `run` command line (`run --agent-id
 * ... -- PROGRAM ...`) whose grants the Worker gets; inside it, `probe` runs with those same
 * arguments and its result is printed as one JSON line.
 */
export async function sandboxProbe(
  module: URL,
  probe: (args: string[]) => Promise<Record<string, string>>,
): Promise<void> {
  if (inWorker()) {
    serveWorker(async (start) => {
      // deno-lint-ignore no-console
      console.log(JSON.stringify(await probe(start.args)));
      return 0;
    });
    return;
  }
  const env = Deno.env.toObject();
  const config = resolveRunConfig(Deno.args.slice(1), env);
  prepareDirs(config);
  const grants = runGrants(config, env, { appDir: APP_DIR });
  const code = await runInWorker(
    module,
    { ...grants, env: [...ENV_VARS], sys: ["hostname"] },
    { type: "start", args: Deno.args, runId: "probe", grants },
  );
  Deno.exit(code);
}
