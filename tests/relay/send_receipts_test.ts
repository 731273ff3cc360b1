/**
 * `send --wait-reply` shows receipts as they happen and exits 1 on a failure reply (issue 14);
 * the dev relay's stderr never carries a control character raw (issue 16).
 *
 * @module
 */
import assert from "node:assert/strict";
import { devRelayCommand } from "../../src/cli/dev_relay.ts";
import { sendCommand } from "../../src/cli/send.ts";
import { type DevRelay, startDevRelay } from "../../src/dev_relay/mod.ts";
import { RelayHttpClient } from "../../src/relay/mod.ts";
import { waitFor } from "./helpers.ts";

// deno-lint-ignore no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

async function relayFor() {
  const relay = await startDevRelay();
  return Object.assign(relay, { [Symbol.asyncDispose]: () => relay.close() });
}

/** Runs `send --wait-reply` against `relay`, playing agent a1 with `agent`. */
async function sendWithAgent(
  relay: DevRelay,
  agent: (messageId: number, err: string[], client: RelayHttpClient) => Promise<void>,
) {
  const out: string[] = [];
  const err: string[] = [];
  const running = sendCommand(
    ["--relay", relay.url, "--to", "a1", "--wait-reply", "20", "please"],
    {},
    { stdout: (l) => void out.push(l), stderr: (l) => void err.push(l), pollIntervalMs: 10 },
  );
  const client = new RelayHttpClient({ baseUrl: relay.url, token: "dev" });
  const sent = await waitFor(
    () => relay.admin.state().messages.find((m) => m.to === "a1"),
    "the sent message",
  );
  await agent(sent.id, err, client);
  const code = await running;
  return { code, out, err, sentId: sent.id };
}

Deno.test("send --wait-reply shows each receipt once as it happens, then the reply", async () => {
  await using relay = await relayFor();
  const run = await sendWithAgent(relay, async (id, err, client) => {
    await client.sendReceipt(id, { agentId: "a1", state: "received", at: 1 });
    await waitFor(() => err.includes("receipt: received (a1)"), "the received line");
    await client.sendReceipt(id, { agentId: "a1", state: "handed", at: 2 });
    await waitFor(() => err.includes("receipt: handed (a1)"), "the handed line");
    await client.sendMessage({ from: "a1", to: "user", kind: "chat", body: "done", replyTo: id });
    await client.sendReceipt(id, { agentId: "a1", state: "answered", at: 3 });
  });
  assert.equal(run.code, 0, run.err.join("\n"));
  assert.equal(run.out.length, 2);
  assert.equal(JSON.parse(run.out[1] ?? "").body, "done");
  const receipts = run.err.filter((l) => l.startsWith("receipt: "));
  // "answered" may land before or after the reply is seen; never twice.
  assert.deepEqual(receipts.slice(0, 2), ["receipt: received (a1)", "receipt: handed (a1)"]);
  assert.equal(new Set(receipts).size, receipts.length);
});

Deno.test("send --wait-reply prints a failure reply and exits 1 with its error on stderr", async () => {
  await using relay = await relayFor();
  const run = await sendWithAgent(relay, async (id, _err, client) => {
    await client.sendReceipt(id, { agentId: "a1", state: "handed", at: 2 });
    await client.sendReceipt(id, {
      agentId: "a1",
      state: "failed",
      at: 3,
      detail: "the model API answered 500\u001b[2J",
    });
    await client.sendMessage({
      from: "a1",
      to: "user",
      kind: "chat",
      body: "I could not answer: the model API answered 500.",
      replyTo: id,
      payload: { status: "failed", error: "the model API answered 500" },
    });
  });
  assert.equal(run.code, 1);
  assert.equal(run.out.length, 2);
  assert.equal(
    JSON.parse(run.out[1] ?? "").body,
    "I could not answer: the model API answered 500.",
  );
  assert.ok(run.err.includes("receipt: handed (a1)"), run.err.join("\n"));
  assert.ok(
    run.err.includes("receipt: failed (a1): the model API answered 500\\u{1b}[2J"),
    run.err.join("\n"),
  );
  assert.match(
    run.err[run.err.length - 1] ?? "",
    new RegExp(`^send: a1 failed to answer message #${run.sentId}: the model API answered 500$`),
  );
  assert.ok(run.err.every((l) => !UNSAFE.test(l)));
  // The failure reply was marked read like any reply.
  assert.equal(relay.admin.state().reads.length, 1);
});

Deno.test("the dev relay's stderr escapes every control character it would print", async () => {
  const err: string[] = [];
  const controller = new AbortController();
  const listening = Promise.withResolvers<DevRelay>();
  const running = devRelayCommand(["--port", "0"], {}, {
    signal: controller.signal,
    stdout: () => {},
    stderr: (l) => void err.push(l),
    onListen: (relay) => listening.resolve(relay),
  });
  const relay = await listening.promise;
  const headers = { authorization: "Bearer dev", "content-type": "application/json" };
  // A window-title sequence in a path, a clear-screen and separators in ids and bodies.
  await (await fetch(`${relay.url}/api/agents/%1B%5D0%3Bpwned%07`, { method: "DELETE", headers }))
    .body?.cancel();
  await (await fetch(`${relay.url}/api/messages`, {
    method: "POST",
    headers,
    body: JSON.stringify({
      from: "u\u009b2J",
      to: "a1\u2028forged",
      kind: "chat",
      body: "\u001b[2J\u202eevil\u0085",
    }),
  })).body?.cancel();
  await (await fetch(`${relay.url}/nowhere%1B%5B2J`, { headers })).body?.cancel();
  controller.abort();
  assert.equal(await running, 0);
  assert.ok(err.length >= 4, err.join("\n"));
  for (const line of err) {
    assert.ok(!UNSAFE.test(line), `raw control character in ${JSON.stringify(line)}`);
  }
  assert.ok(err.some((l) => l.includes("\\u{1b}]0;pwned\\u{7} left")), err.join("\n"));
  assert.ok(err.some((l) => l.includes("u\\u{9b}2J -> a1\\u{2028}forged")), err.join("\n"));
});
