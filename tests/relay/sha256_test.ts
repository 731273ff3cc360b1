import assert from "node:assert/strict";
import { sha256Hex } from "../../src/dev_relay/sha256.ts";

async function webCrypto(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("sha256Hex: the FIPS 180-4 examples", () => {
  assert.equal(
    sha256Hex("abc"),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  assert.equal(sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  assert.equal(
    sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
  );
});

Deno.test("sha256Hex: equals Web Crypto's digest at every length around the block edges", async () => {
  for (let length = 0; length <= 200; length++) {
    const text = Array.from({ length }, (_, i) => String.fromCharCode(32 + ((i * 7 + length) % 95)))
      .join("");
    assert.equal(sha256Hex(text), await webCrypto(text), `length ${length}`);
  }
  for (const text of ["drt_\u00e9\u4e2d\u{1f600}", "x".repeat(10_000)]) {
    assert.equal(sha256Hex(text), await webCrypto(text));
  }
});
