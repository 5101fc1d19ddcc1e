import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { OutputDecoder } from "./output.js";

const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");

describe("OutputDecoder", () => {
  it("decodes base64 chunks that split multibyte characters", () => {
    const text = "héllo wörld €100 😀 done";
    const bytes = Buffer.from(text);
    for (let cut = 1; cut < bytes.length; cut++) {
      const d = new OutputDecoder();
      const pieces = [d.push(b64(bytes.subarray(0, cut))), d.push(b64(bytes.subarray(cut))), d.end()];
      assert.equal(pieces.join(""), text, `cut at ${cut}`);
      assert.equal(d.text(), text);
      for (const p of pieces) assert.ok(!p.includes("\uFFFD"), `replacement char at cut ${cut}`);
    }
  });

  it("gives nothing until a character is complete", () => {
    const euro = Buffer.from("€"); // 3 bytes
    const d = new OutputDecoder();
    assert.equal(d.push(b64(euro.subarray(0, 1))), "");
    assert.equal(d.push(b64(euro.subarray(1, 2))), "");
    assert.equal(d.push(b64(euro.subarray(2))), "€");
  });

  it("ends an incomplete character with U+FFFD", () => {
    const d = new OutputDecoder();
    assert.equal(d.push(b64(Buffer.from("a€").subarray(0, 2))), "a");
    assert.equal(d.end(), "\uFFFD");
    assert.equal(d.text(), "a\uFFFD");
  });
});
