import assert from "node:assert/strict";
import { createCommandAdapter } from "../../src/adapters/command.ts";
import {
  type AdapterEvents,
  defaultSpawner,
  type SessionEvent,
  type Spawner,
} from "../../src/adapters/adapter.ts";
import { getLogger } from "../../src/logger.ts";
import type { AgentStatus, Message } from "../../src/types.ts";

const ECHO = new URL("../../examples/echo-agent", import.meta.url).pathname;

function recorder() {
  const statuses: AgentStatus[] = [];
  const events: SessionEvent[] = [];
  const diagnostics: string[] = [];
  let exited: (info: { code: number | null; expected: boolean }) => void = () => {};
  const exit = new Promise<{ code: number | null; expected: boolean }>((r) => (exited = r));
  const waiters: Array<{ test: (e: SessionEvent) => boolean; resolve: (e: SessionEvent) => void }> =
    [];
  const sink: AdapterEvents = {
    status: (s) => statuses.push(s),
    event: (e) => {
      events.push(e);
      for (const w of waiters.splice(0)) w.test(e) ? w.resolve(e) : waiters.push(w);
    },
    exit: (info) => exited(info),
    diagnostic: (line) => diagnostics.push(line),
  };
  const next = (test: (e: SessionEvent) => boolean) =>
    new Promise<SessionEvent>((resolve) => {
      const found = events.find(test);
      if (found) resolve(found);
      else waiters.push({ test, resolve });
    });
  return { sink, statuses, events, diagnostics, exit, next };
}

function adapterFor(args: string[], events: AdapterEvents, spawn: Spawner = defaultSpawner) {
  return createCommandAdapter({
    agentId: "a",
    provider: "command",
    cwd: Deno.cwd(),
    stateDir: Deno.cwd(),
    args,
    env: { AGENT_RELAY_RUNNER_PORT: "1" },
    permissionPolicy: "deny",
    decidePermission: () => Promise.resolve({ decision: "deny" }),
    spawn,
    log: getLogger("test"),
  }, events);
}

const message = (id: number, body: string): Message => ({
  id,
  from: "user",
  to: "a",
  kind: "chat",
  body,
  createdAt: new Date(0).toISOString(),
});

Deno.test("command adapter: the echo agent answers a delivered message with a reply", async () => {
  const r = recorder();
  const adapter = adapterFor([ECHO], r.sink);
  await adapter.start();
  assert.ok(adapter.pid);
  await adapter.deliver([message(7, "hello")]);
  const response = await r.next((e) => e.type === "response");
  assert.deepEqual(response, { type: "response", text: "echo: hello", replyTo: 7 });
  await r.next((e) => e.type === "turn-end");
  assert.deepEqual(r.events.find((e) => e.type === "consumed"), {
    type: "consumed",
    messageIds: [7],
  });
  assert.deepEqual(r.statuses, ["idle", "busy", "idle"]);
  // Room for a loaded machine: the program exits by itself at the end of its stdin.
  await adapter.stop({ timeoutMs: 10_000 });
  assert.deepEqual(await r.exit, { code: 0, signal: null, expected: true });
});

/**
 * A real child whose stdin writes complete only once its answer has come out on stdout: the
 * program answers before the adapter's write resumes, as a loaded machine may schedule it.
 */
const lateWrites: Spawner = (command, options) => {
  const child = defaultSpawner(command, options);
  const answered = Promise.withResolvers<void>();
  const stdout = child.stdout.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, out) {
        out.enqueue(chunk);
        answered.resolve();
      },
    }),
  );
  const writer = child.stdin.getWriter();
  const stdin = new WritableStream<Uint8Array>({
    async write(chunk) {
      await writer.write(chunk);
      await answered.promise;
    },
    close: () => writer.close(),
    abort: (reason) => writer.abort(reason),
  });
  return {
    pid: child.pid,
    status: child.status,
    stdin,
    stdout,
    stderr: child.stderr,
    kill: (signal?: Deno.Signal) => child.kill(signal),
    ref: () => child.ref(),
    unref: () => child.unref(),
    output: () => child.output(),
    [Symbol.asyncDispose]: () => child[Symbol.asyncDispose](),
  } as unknown as Deno.ChildProcess;
};

Deno.test("command adapter: consumed comes before the answer, even when the program answers before the write resumes", async () => {
  const r = recorder();
  const adapter = adapterFor([ECHO], r.sink, lateWrites);
  await adapter.start();
  await adapter.deliver([message(7, "hello")]);
  await r.next((e) => e.type === "turn-end");
  assert.deepEqual(r.events.map((e) => e.type), ["consumed", "response", "turn-end"]);
  await adapter.stop({ timeoutMs: 10_000 });
  assert.deepEqual(await r.exit, { code: 0, signal: null, expected: true });
});

const SCRIPT = `
read -r line
echo '{"type":"status","status":"busy"}'
echo '{"type":"step","kind":"tool_use","text":"ls -la"}'
echo 'plain text answer'
echo "oops" >&2
echo '{"type":"status","status":"idle"}'
read -r line || true
exit 3
`;

Deno.test("command adapter: steps, plain text, self-reported status, stderr and an unexpected exit", async () => {
  const r = recorder();
  const adapter = adapterFor(["bash", "-c", SCRIPT], r.sink);
  await adapter.start();
  await adapter.deliver([message(1, "go")]);
  await r.next((e) => e.type === "turn-end");
  assert.deepEqual(r.events.filter((e) => e.type === "step"), [{
    type: "step",
    kind: "tool_use",
    text: "ls -la",
  }]);
  assert.deepEqual(r.events.filter((e) => e.type === "response"), [{
    type: "response",
    text: "plain text answer",
  }]);
  // The program reported its own status, so the plain line did not end the turn: idle did.
  assert.deepEqual(r.statuses, ["idle", "busy", "busy", "idle"]);
  await adapter.deliver([message(2, "bye")]);
  const exit = await r.exit;
  assert.deepEqual(exit, { code: 3, signal: null, expected: false });
  assert.ok(r.diagnostics.includes("oops"));
  await adapter.stop();
});

Deno.test("command adapter: a reported error fails the turn once; the next delivery is answered", async () => {
  const r = recorder();
  const adapter = adapterFor([ECHO], r.sink);
  await adapter.start();
  await adapter.deliver([message(1, "/fail The model is down.  Try later.")]);
  const failed = await r.next((e) => e.type === "turn-end");
  assert.deepEqual(failed, { type: "turn-end", ok: false, error: "The model is down." });
  assert.equal(r.statuses.at(-1), "error");
  // `error` alone does not take over the turns: the next answer ends its turn as before.
  await adapter.deliver([message(2, "again")]);
  await r.next((e) => e.type === "response" && e.text === "echo: again");
  await r.next((e) => e.type === "turn-end" && e.ok);
  assert.deepEqual(r.events.filter((e) => e.type === "turn-end"), [
    failed,
    { type: "turn-end", ok: true },
  ]);
  assert.deepEqual(r.statuses, ["idle", "busy", "error", "busy", "idle"]);
  // Without a reason the error says so.
  await adapter.deliver([message(3, "/fail")]);
  await r.next((e) => e.type === "turn-end" && e.error === "Asked to fail");
  // Room for a loaded machine: the program exits by itself at the end of its stdin.
  await adapter.stop({ timeoutMs: 10_000 });
  assert.deepEqual(await r.exit, { code: 0, signal: null, expected: true });
});

Deno.test("command adapter: interrupt while idle sends nothing; during a turn it sends SIGINT", async () => {
  const r = recorder();
  // Reports each SIGINT as a step, says when it holds a turn open, and answers messages.
  const script = `
on_int() { echo '{"type":"step","kind":"signal","text":"SIGINT"}'; }
trap on_int INT
while read -r line; do
  case "$line" in
    *HOLD*)
      echo '{"type":"step","kind":"note","text":"holding"}'
      sleep 5 & pid=$!; wait $pid; kill $pid 2>/dev/null
      echo '{"type":"response","text":"held"}' ;;
    *) echo '{"type":"response","text":"answered"}' ;;
  esac
done`;
  const adapter = adapterFor(["bash", "-c", script], r.sink);
  await adapter.start();
  await adapter.interrupt(); // idle: nothing is sent, the program lives on
  await adapter.deliver([message(1, "first")]);
  await r.next((e) => e.type === "turn-end");
  await adapter.deliver([message(2, "HOLD")]);
  await r.next((e) => e.type === "step" && e.text === "holding");
  await adapter.interrupt(); // ends the wait early: the answer follows at once
  await r.next((e) => e.type === "response" && e.text === "held");
  await r.next((e) =>
    e.type === "turn-end" && r.events.filter((x) => x.type === "turn-end").length === 2
  );
  // Exactly one SIGINT reached the program: the one sent during the turn.
  assert.deepEqual(
    r.events.filter((e) => e.type === "step").map((e) => e.type === "step" && e.text),
    ["holding", "SIGINT"],
  );
  await adapter.stop({ timeoutMs: 10_000 }); // it exits by itself at the end of its stdin
  assert.deepEqual(await r.exit, { code: 0, signal: null, expected: true });
});

Deno.test("command adapter: deliver after the program died rejects, so the message is kept", async () => {
  const r = recorder();
  const adapter = adapterFor(["bash", "-c", "exit 0"], r.sink);
  await adapter.start();
  await r.exit;
  await assert.rejects(adapter.deliver([message(1, "x")]), /not running/);
});

Deno.test("command adapter: stop kills a program that ignores stdin closing and SIGTERM", async () => {
  const r = recorder();
  const adapter = adapterFor(
    ["bash", "-c", "trap '' TERM; while true; do sleep 0.05; done"],
    r.sink,
  );
  await adapter.start();
  await adapter.stop({ timeoutMs: 400 });
  const exit = await r.exit;
  assert.equal(exit.expected, true);
  assert.notEqual(exit.code, 0);
});

Deno.test("command adapter: stop does not wait on a program that stopped reading its stdin", async () => {
  const r = recorder();
  const adapter = adapterFor(["sleep", "30"], r.sink);
  await adapter.start();
  // More than a pipe holds: the write stays pending, as a close would.
  const handOver = adapter.deliver([message(1, "x".repeat(256 * 1024))]);
  handOver.catch(() => {});
  let guard: ReturnType<typeof setTimeout> | undefined;
  const stopped = await Promise.race([
    adapter.stop({ timeoutMs: 400 }).then(() => true),
    new Promise<false>((resolve) => (guard = setTimeout(() => resolve(false), 10_000))),
  ]);
  clearTimeout(guard);
  assert.equal(stopped, true, "stop() finished");
  await assert.rejects(handOver);
  assert.equal((await r.exit).expected, true);
});

Deno.test("command adapter: an unfinished last line is not taken for a response", async () => {
  const r = recorder();
  const adapter = adapterFor(["bash", "-c", "read -r line; printf 'half an ans'; exit 1"], r.sink);
  await adapter.start();
  await adapter.deliver([message(1, "go")]);
  assert.deepEqual(await r.exit, { code: 1, signal: null, expected: false });
  assert.equal(r.events.some((e) => e.type === "response" || e.type === "turn-end"), false);
  assert.ok(r.diagnostics.some((d) => d.includes("unfinished last line was ignored: half an ans")));
  await adapter.stop();
});
