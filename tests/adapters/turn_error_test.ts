/**
 * Tests of `oneSentence`: the `error` of a failed turn is one readable sentence on one line.
 *
 * @module
 */
import assert from "node:assert/strict";
import { MAX_TURN_ERROR, oneSentence } from "../../src/adapters/turn_error.ts";

Deno.test("oneSentence: the first sentence, on one line, cut at the limit", () => {
  assert.equal(
    oneSentence(
      "API Error: 500 mock 500. This is a server-side issue, usually temporary — try again.",
    ),
    "API Error: 500 mock 500.",
  );
  assert.equal(oneSentence("line one\n\n  line two"), "line one line two");
  assert.equal(oneSentence("version 1.2 failed. Next"), "version 1.2 failed.");
  assert.equal(oneSentence("no end mark"), "no end mark");
  assert.equal(oneSentence("  \n"), "The turn failed");
  assert.equal(oneSentence(undefined, "Codex failed"), "Codex failed");
  const long = oneSentence("x".repeat(1000));
  assert.equal(long.length, MAX_TURN_ERROR);
  assert.ok(long.endsWith("…"));
});
