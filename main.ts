/**
 * agent-relay-runner: one process per AI coding agent, bridging its CLI to an Agent Relay server.
 *
 * `deno task start -- --help` or the compiled binary's `--help` lists the commands.
 *
 * @module
 */
import { main } from "./src/cli/mod.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
