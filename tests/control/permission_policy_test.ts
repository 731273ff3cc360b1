import assert from "node:assert/strict";
import {
  createPermissionDecider,
  DEFAULT_PERMISSION_BUDGET_MS,
} from "../../src/control/permission_policy.ts";
import type { PermissionDecision, PermissionRequest } from "../../src/types.ts";

const request: PermissionRequest = {
  requestId: "r1",
  provider: "claude",
  tool: "Bash",
  input: { command: "ls" },
};

/** Manual timers: `fire()` runs every pending callback. */
function manualTimers() {
  const pending = new Map<number, () => void>();
  let next = 1;
  return {
    setTimeout: (cb: () => void, _ms: number) => {
      pending.set(next, cb);
      return next++;
    },
    clearTimeout: (id: unknown) => void pending.delete(id as number),
    fire() {
      const all = [...pending.values()];
      pending.clear();
      for (const cb of all) cb();
    },
    get size() {
      return pending.size;
    },
  };
}

Deno.test("allow and deny policies answer at once without asking", async () => {
  let asked = 0;
  const ask = () => {
    asked++;
    return Promise.resolve<PermissionDecision>({ decision: "deny" });
  };
  assert.deepEqual(
    (await createPermissionDecider({ policy: "allow", ask })(request)).decision,
    "allow",
  );
  assert.deepEqual(
    (await createPermissionDecider({ policy: "deny", ask })(request)).decision,
    "deny",
  );
  assert.deepEqual(asked, 0);
});

Deno.test("ask-relay passes the relay's answer through and clears its timer", async () => {
  const timers = manualTimers();
  const seen: PermissionRequest[] = [];
  const decide = createPermissionDecider({
    policy: "ask-relay",
    ask: (req) => {
      seen.push(req);
      return Promise.resolve({ decision: "allow", reason: "operator said yes" });
    },
    ...timers,
  });
  assert.deepEqual(await decide(request), { decision: "allow", reason: "operator said yes" });
  assert.deepEqual(seen, [request]);
  assert.deepEqual(timers.size, 0);
});

Deno.test("ask-relay denies when the relay does not answer in the budget, and aborts the ask", async () => {
  const timers = manualTimers();
  let signal: AbortSignal | undefined;
  const decide = createPermissionDecider({
    policy: "ask-relay",
    ask: (_req, { signal: s }) => {
      signal = s;
      return new Promise(() => {}); // never answers, ignores the signal
    },
    ...timers,
  });
  const pending = decide(request);
  timers.fire();
  const d = await pending;
  assert.deepEqual(d.decision, "deny");
  assert.match(d.reason ?? "", new RegExp(`within ${DEFAULT_PERMISSION_BUDGET_MS} ms`));
  assert.ok(signal?.aborted);
});

Deno.test("ask-relay with real timers never hangs past a short budget", async () => {
  const decide = createPermissionDecider({
    policy: "ask-relay",
    budgetMs: 20,
    ask: () => new Promise(() => {}),
  });
  assert.deepEqual((await decide(request)).decision, "deny");
});

Deno.test("ask-relay denies on an error or a malformed answer", async () => {
  const failing = createPermissionDecider({
    policy: "ask-relay",
    ask: () => Promise.reject(new Error("connection refused")),
  });
  const d1 = await failing(request);
  assert.deepEqual(d1.decision, "deny");
  assert.match(d1.reason ?? "", /connection refused/);

  const throwing = createPermissionDecider({
    policy: "ask-relay",
    ask: () => {
      throw new Error("sync boom");
    },
  });
  assert.match((await throwing(request)).reason ?? "", /sync boom/);

  const odd = createPermissionDecider({
    policy: "ask-relay",
    ask: () => Promise.resolve({ decision: "maybe" } as unknown as PermissionDecision),
  });
  const d3 = await odd(request);
  assert.deepEqual(d3.decision, "deny");
  assert.match(d3.reason ?? "", /neither allow nor deny/);
});

Deno.test("ask-relay denies when the caller cancels", async () => {
  const timers = manualTimers();
  const decide = createPermissionDecider({
    policy: "ask-relay",
    ask: () => new Promise(() => {}),
    ...timers,
  });
  const abort = new AbortController();
  const pending = decide(request, { signal: abort.signal });
  abort.abort();
  const d = await pending;
  assert.deepEqual(d.decision, "deny");
  assert.match(d.reason ?? "", /cancelled/);
  assert.deepEqual(timers.size, 0);
});

Deno.test("bad options are refused with a clear error", () => {
  assert.throws(() => createPermissionDecider({ policy: "ask-relay" }), /needs an ask function/);
  assert.throws(
    () => createPermissionDecider({ policy: "allow", budgetMs: 2000 }),
    /below the hook's 2000 ms/,
  );
  assert.throws(() => createPermissionDecider({ policy: "allow", budgetMs: 0 }), RangeError);
  assert.throws(
    // deno-lint-ignore no-explicit-any
    () => createPermissionDecider({ policy: "ask" as any }),
    /"ask" is not one of: allow, deny, ask-relay/,
  );
});
