/**
 * The change feed: what `onChange` listeners hear.
 *
 * @module
 */
import assert from "node:assert/strict";
import { waitFor } from "../support/wait.ts";
import { nextChange, open, TestClock, transientError, withDir } from "./support.ts";

Deno.test("outbox: listeners see enqueues (once per burst) and failures; a throwing one is harmless", async () => {
  await withDir(async (dir) => {
    const clock = new TestClock();
    using outbox = open(dir, clock, { send: () => Promise.reject(transientError("down")) });
    const reasons: string[] = [];
    outbox.onChange(() => {
      throw new Error("listener bug");
    });
    const off = outbox.onChange((c) => reasons.push(`${c.reason}:${c.stats.pending}`));
    outbox.enqueue({ kind: "e" });
    outbox.enqueue({ kind: "e" });
    await waitFor("the enqueue notification", () => reasons.length > 0);
    assert.deepEqual(reasons, ["enqueued:2"]);
    outbox.start();
    await waitFor("the failure notification", () => reasons.length > 1);
    assert.deepEqual(reasons, ["enqueued:2", "failed:2"]);
    off();
    // Another listener's notification is the signal that listeners were told.
    const told = nextChange(outbox, "enqueued");
    outbox.enqueue({ kind: "e" });
    await told;
    assert.equal(reasons.length, 2);
    await outbox.stop();
  });
});
