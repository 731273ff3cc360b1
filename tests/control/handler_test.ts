/**
 * The handler's rules for every request (src/control/handler.ts, http.ts, secret.ts): the
 * secret, routing (404, 405 with Allow, never a prototype's member), and bad or huge bodies.
 */
import assert from "node:assert/strict";
import {
  constantTimeEqual,
  createControlHandler,
  generateSecret,
  MAX_BODY_BYTES,
} from "../../src/control/mod.ts";
import { getLogLevel } from "../../src/logger.ts";
import { AUTH, fake, get, handlerFor, post, SECRET } from "./control_fake.ts";

Deno.test("generateSecret() gives 256 random bits; constantTimeEqual() compares exactly", () => {
  const a = generateSecret();
  const b = generateSecret();
  assert.match(a, /^[0-9a-f]{64}$/);
  assert.notEqual(a, b);
  assert.ok(constantTimeEqual(a, a));
  assert.ok(!constantTimeEqual(a, b));
  assert.ok(!constantTimeEqual(a.slice(0, 63), a));
  assert.ok(!constantTimeEqual(a + "0", a));
  assert.ok(!constantTimeEqual("", a));
  assert.throws(
    () => createControlHandler({ secret: "short", callbacks: fake().callbacks }),
    /at least 16 characters/,
  );
});

Deno.test("GET /health needs no secret and says only {ok} and the relay auth state", async () => {
  const h = handlerFor(fake());
  const res = await h(get("/health", {}));
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { ok: true, relay: { auth: "unknown" } });
  const bad = await h(post("/health", {}, {}));
  assert.equal(bad.status, 405);
  assert.equal(bad.headers.get("allow"), "GET");
  await bad.body?.cancel();
});

Deno.test("without the right secret every other endpoint answers 401 and does nothing", async () => {
  const f = fake();
  const h = handlerFor(f);
  const before = getLogLevel();
  const wrong = [{}, { authorization: "Bearer nope" }, { authorization: SECRET }, {
    authorization: `Basic ${SECRET}`,
  }, { authorization: `Bearer ${SECRET}x` }];
  for (const headers of wrong) {
    const requests = [
      post("/hooks/stop", { stop_hook_active: false }, headers),
      post("/hooks/session-start", {}, headers),
      post("/status", { status: "idle" }, headers),
      get("/status", headers),
      post("/hook-fatal", { hook: "x", error: "y" }, headers),
      post("/log-level", { level: "debug" }, headers),
      get("/log-level", headers),
      get("/reply-obligations", headers),
      get("/metrics", headers),
      get("/monitor", headers),
      get("/nowhere", headers),
    ];
    for (const req of requests) {
      const res = await h(req);
      assert.equal(res.status, 401, `${req.method} ${req.url} with ${JSON.stringify(headers)}`);
      assert.match((await res.json()).error, /secret/);
    }
  }
  assert.deepEqual(f.hooks, []);
  assert.deepEqual(f.statuses, []);
  assert.deepEqual(f.fatals, []);
  assert.equal(getLogLevel(), before);
  const ok = await h(get("/status", { authorization: `bearer ${SECRET}` }));
  assert.equal(ok.status, 200, "the scheme is case-insensitive");
  await ok.body?.cancel();
});

Deno.test("unknown paths answer 404, wrong methods 405 with Allow", async () => {
  const h = handlerFor(fake());
  const cases: Array<[Request, number, string | null]> = [
    [get("/nowhere"), 404, null],
    [post("/hooks/not-an-event", {}), 404, null],
    [post("/hooks/", {}), 404, null],
    [get("/hooks/stop"), 405, "POST"],
    [post("/metrics", {}), 405, "GET"],
    [post("/reply-obligations", {}), 405, "GET"],
    [get("/hook-fatal"), 405, "POST"],
    [new Request("http://127.0.0.1/status", { method: "DELETE", headers: AUTH }), 405, "GET, POST"],
    [new Request("http://127.0.0.1/log-level", { method: "PUT", headers: AUTH }), 405, "GET, POST"],
  ];
  const query = await h(get("/status?verbose=1#top"));
  assert.equal(query.status, 200, "a query string does not change the path");
  await query.body?.cancel();
  const dotted = await h(get("/hooks/../status"));
  assert.equal(dotted.status, 200, "dot segments resolve as a URL parser would");
  await dotted.body?.cancel();
  for (const [req, status, allow] of cases) {
    const res = await h(req);
    assert.equal(res.status, status, `${req.method} ${req.url}`);
    assert.equal(res.headers.get("allow"), allow, `${req.method} ${req.url}`);
    assert.equal(typeof (await res.json()).error, "string");
  }
});

Deno.test("a method named like an Object member answers 405, never a prototype's function", async () => {
  const f = fake();
  const h = handlerFor(f);
  const methods = ["constructor", "toString", "__proto__", "hasOwnProperty", "valueOf"];
  const paths: Array<[string, string]> = [
    ["/status", "GET, POST"],
    ["/metrics", "GET"],
    ["/reply-obligations", "GET"],
    ["/log-level", "GET, POST"],
    ["/hook-fatal", "POST"],
    ["/monitor", "GET"],
    ["/hooks/stop", "POST"],
    ["/health", "GET"],
  ];
  for (const method of methods) {
    for (const [path, allow] of paths) {
      const res = await h(new Request(`http://127.0.0.1${path}`, { method, headers: AUTH }));
      assert.ok(res instanceof Response, `${method} ${path} answered ${String(res)}`);
      assert.equal(res.status, 405, `${method} ${path}`);
      assert.equal(res.headers.get("allow"), allow, `${method} ${path}`);
      assert.equal((await res.json()).error, `${method} is not allowed on ${path}`);
    }
  }
  for (const path of ["/constructor", "/__proto__", "/hooks/constructor", "/hooks/toString"]) {
    const res = await h(get(path));
    assert.equal(res.status, 404, path);
    await res.body?.cancel();
  }
  assert.deepEqual(f.hooks, []);
  assert.deepEqual(f.statuses, []);
  assert.deepEqual(f.fatals, []);
});

Deno.test("bad bodies answer 400 {error}, and nothing is done", async () => {
  const f = fake();
  const h = handlerFor(f);
  const cases: Array<[Request, RegExp]> = [
    [post("/hooks/stop", "{not json"), /not valid JSON/],
    [post("/hooks/stop", ""), /empty/],
    [post("/hooks/stop", "[1,2]"), /an array, not a JSON object/],
    [post("/hooks/stop", "42"), /number, not a JSON object/],
    [post("/hooks/stop", new Uint8Array([0x7b, 0xff, 0x7d])), /UTF-8/],
    [
      post("/hooks/stop", { stop_hook_active: "false" }),
      /"stop_hook_active" is string, not a boolean/,
    ],
    [post("/hooks/pre-tool-use", { session_id: 12 }), /"session_id" is number, not a string/],
    [post("/hooks/permission-request", { tool_name: ["Bash"] }), /"tool_name" is an array/],
    [post("/status", { status: "sleepy" }), /"status" must be one of: starting, idle/],
    [post("/status", { status: "idle", source: 3 }), /"source"/],
    [post("/log-level", { level: 5 }), /"level" must be one of: debug/],
    [post("/log-level", { level: "verbose" }), /"level" must be one of/],
    [post("/hook-fatal", { hook: 1, error: "x" }), /"hook" is number/],
    [post("/hook-fatal", { hook: "stop", error: { a: 1 } }), /"error" is object/],
  ];
  for (const [req, pattern] of cases) {
    const res = await h(req);
    assert.equal(res.status, 400, req.url);
    assert.match((await res.json()).error, pattern);
  }
  assert.deepEqual(f.hooks, []);
  assert.deepEqual(f.statuses, []);
  assert.deepEqual(f.fatals, []);
});

Deno.test("bodies over 1 MiB answer 413, declared or streamed, without reading it all", async () => {
  const f = fake();
  const h = handlerFor(f);
  const declared = new Request("http://127.0.0.1/hooks/stop", {
    method: "POST",
    headers: { ...AUTH, "content-length": String(MAX_BODY_BYTES + 1) },
    body: "{}",
  });
  const r1 = await h(declared);
  assert.equal(r1.status, 413);
  assert.match((await r1.json()).error, /limit/);

  let pulled = 0;
  const chunk = new Uint8Array(64 * 1024).fill(0x20);
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulled += chunk.byteLength;
      if (pulled > 64 * MAX_BODY_BYTES) controller.close();
      else controller.enqueue(chunk);
    },
  });
  const r2 = await h(post("/hooks/session-start", stream));
  assert.equal(r2.status, 413);
  await r2.body?.cancel();
  assert.ok(pulled < 2 * MAX_BODY_BYTES, `read ${pulled} bytes of a 64 MiB body`);

  const exact = "{" + " ".repeat(MAX_BODY_BYTES - 2) + "}";
  const r3 = await h(post("/hooks/session-start", exact));
  assert.equal(r3.status, 200, "exactly 1 MiB is accepted");
  await r3.body?.cancel();
  assert.equal(f.hooks.length, 1);
});
