/**
 * The `command` providers the process-level tests drive: the echo agent and small bash agents,
 * and readers for the files those agents leave in their cwd.
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { waitFor } from "./wait.ts";

/** examples/echo-agent: answers each message with `echo: <body>`. */
export const ECHO: string = fileURLToPath(new URL("../../examples/echo-agent", import.meta.url));

/**
 * A bash agent running `handler` for each delivered message, with `id` (the message id) and
 * `body` (its text) set; `reply TEXT` answers it.
 */
export function bashAgent(handler: string): string[] {
  const script = `
reply() { printf '{"type":"response","text":"%s","replyTo":%s}\\n' "$1" "$id"; }
while IFS= read -r line; do
  id=\${line#*\\"id\\":}; id=\${id%%,*}
  body=\${line#*\\"body\\":\\"}; body=\${body%%\\"*}
  ${handler}
done`;
  return ["bash", "-c", script];
}

/** Options of {@linkcode streamAgent}. */
export interface StreamAgentOptions {
  /** Also report a hook failure per message to `/hook-fatal`. */
  fatal?: boolean;
  /** `sleep` this long (bash syntax, say `0.5`) before answering. */
  delay?: string;
}

/**
 * A bash agent: writes its control port and secret to `control.txt` in its cwd (the secret is
 * only in its environment), logs each delivered message id to `received.txt`, and answers each
 * with a step and a response carrying `replyTo`. With `fatal`, it also reports a hook failure
 * per message to `/hook-fatal` (logging `fatal-try` before and `fatal-ok` after a 200 to
 * `fatals.txt`), like a broken hook would.
 */
export function streamAgent(options: StreamAgentOptions = {}): string[] {
  const fatal = options.fatal
    ? `echo "fatal-try h$id" >> fatals.txt
  if curl -fsS --max-time 2 -o /dev/null -X POST -H @/dev/fd/3 \\
      -H 'Content-Type: application/json' \\
      --data-binary "{\\"hook\\":\\"h$id\\",\\"error\\":\\"broken on purpose\\"}" \\
      "http://127.0.0.1:$AGENT_RELAY_RUNNER_PORT/hook-fatal" \\
      3<<<"Authorization: Bearer $AGENT_RELAY_RUNNER_SECRET"; then
    echo "fatal-ok h$id" >> fatals.txt
  fi`
    : "";
  const script = `set -u
printf '%s\\n%s\\n' "$AGENT_RELAY_RUNNER_PORT" "$AGENT_RELAY_RUNNER_SECRET" > control.tmp
mv control.tmp control.txt
while IFS= read -r line; do
  id=\${line#*\\"id\\":}; id=\${id%%,*}
  echo "$id" >> received.txt
  ${options.delay ? `sleep ${options.delay}` : ""}
  echo "{\\"type\\":\\"step\\",\\"kind\\":\\"tool_use\\",\\"text\\":\\"step for $id\\"}"
  ${fatal}
  echo "{\\"type\\":\\"response\\",\\"text\\":\\"done $id\\",\\"replyTo\\":$id}"
done
`;
  return ["bash", "-c", script];
}

/** Reads `control.txt` written by {@linkcode streamAgent}: the runner's port and secret. */
export function readControl(agentCwd: string): Promise<{ port: number; secret: string }> {
  return waitFor("the agent's control.txt", async () => {
    try {
      const [port, secret] = (await Deno.readTextFile(join(agentCwd, "control.txt"))).split("\n");
      return port && secret ? { port: Number(port), secret } : undefined;
    } catch {
      return undefined;
    }
  });
}

/** The lines of the text file `name` in `dir` (none when it does not exist). */
export async function lines(dir: string, name: string): Promise<string[]> {
  try {
    return (await Deno.readTextFile(join(dir, name))).split("\n").filter((l) => l !== "");
  } catch {
    return [];
  }
}
