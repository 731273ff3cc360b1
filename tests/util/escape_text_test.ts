import assert from "node:assert/strict";
import { escapeText, hasUnsafeText } from "../../src/util/mod.ts";

Deno.test("escapeText: every control, separator and bidi override becomes a visible escape", () => {
  const unsafe = [
    0x00,
    0x07,
    0x08,
    0x09,
    0x0a,
    0x0b,
    0x0c,
    0x0d,
    0x1b,
    0x7f,
    0x80,
    0x85,
    0x9b,
    0x9f,
    0x2028,
    0x2029,
    0x202a,
    0x202e,
    0x2066,
    0x2069,
  ].map((c) => String.fromCharCode(c));
  for (const c of unsafe) {
    const out = escapeText(`a${c}b`);
    assert.equal(hasUnsafeText(out), false, `U+${c.charCodeAt(0).toString(16)} escaped`);
    assert.ok(out.startsWith("a\\") && out.endsWith("b"), out);
  }
  assert.equal(escapeText("line\nforged"), "line\\nforged");
  assert.equal(escapeText("\u001b]0;title\u0007"), "\\u{1b}]0;title\\u{7}");
});

Deno.test("escapeText: ordinary text, accents and emoji are left alone", () => {
  const text = 'Héllo, wörld — ✓ 日本語 🚀 "quoted" \\ back';
  assert.equal(escapeText(text), text);
  assert.equal(hasUnsafeText(text), false);
});
