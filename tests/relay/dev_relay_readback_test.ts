/**
 * The reference relay answers a new message, insight or receipt with what it stored, without
 * reading the row back (issue 18's fast batch path): every answer equals the stored record,
 * whatever the text (lone surrogates), the numbers (`1e400`) or the optional fields.
 *
 * @module
 */
import assert from "node:assert/strict";
import { startDevRelay } from "../../src/dev_relay/mod.ts";

async function post(url: string, body: string): Promise<Record<string, unknown>> {
  const response = await fetch(url, {
    method: "POST",
    headers: { authorization: "Bearer dev", "content-type": "application/json" },
    body,
  });
  assert.equal(response.status, 201, `${url} answered ${response.status}`);
  return await response.json();
}

/** The value as the wire carries it. */
const wire = (value: unknown) => JSON.parse(JSON.stringify(value));

Deno.test("a new message, insight and receipt are answered exactly as stored", async () => {
  const relay = await startDevRelay();
  try {
    // Raw JSON text: lone surrogates, an overflowing number, a null payload, replies.
    const messages = [
      `{"from":"u\\ud800","to":"a1","kind":"chat","body":"hi \\udc00 there"}`,
      `{"from":"a1","to":"u","kind":"session","body":"x","payload":{"n":1e400,"s":"\\ud83d","z":-0}}`,
      `{"from":"a1","to":"u\\ud800","kind":"chat","body":"re","replyTo":1,"taskId":"t\\udfff"}`,
      `{"from":"a1","to":"u","kind":"chat","body":"","payload":null,"idempotencyKey":"k\\ud800"}`,
      `{"from":"a1","to":"u","kind":"note","body":"p","payload":1e400}`,
    ];
    const answered = [];
    for (const text of messages) {
      answered.push((await post(`${relay.url}/api/messages`, text))["message"]);
    }
    assert.deepEqual(answered, wire(relay.admin.state().messages));

    const insight = await post(
      `${relay.url}/api/insights`,
      `{"sessionId":"s\\ud800","project":"","agentId":"a1","signal":"sig","value":{"v":1e400},` +
        `"outcome":null,"source":"src","occurredAt":1.5,"idempotencyKey":"i\\udc00"}`,
    );
    assert.deepEqual(insight["insight"], wire(relay.admin.state().insights[0]));

    const receipt = await post(
      `${relay.url}/api/messages/1/receipts`,
      `{"agentId":"a\\ud800","state":"handed","at":12.25,"detail":"d\\udc00"}`,
    );
    const stored = relay.admin.state().receipts[0];
    assert.ok(stored);
    const { state, at, agentId, detail } = stored;
    assert.deepEqual(receipt["receipt"], wire({ state, at, agentId, detail }));
  } finally {
    await relay.close();
  }
});
