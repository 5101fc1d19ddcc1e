import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { LineSplitter, readNdjson } from "./ndjson.js";

const enc = (s: string) => new TextEncoder().encode(s);

describe("LineSplitter", () => {
  it("joins lines cut across chunks and drops empty ones", () => {
    const s = new LineSplitter();
    assert.deepEqual(s.push(enc('{"a":')), []);
    assert.deepEqual(s.push(enc('1}\n{"b"')), ['{"a":1}']);
    assert.deepEqual(s.push(enc(":2}\r\n\n{")), ['{"b":2}']);
    assert.deepEqual(s.push(enc('"c":3}')), []);
    assert.deepEqual(s.end(), ['{"c":3}']);
    assert.deepEqual(s.end(), []);
  });

  it("keeps a UTF-8 character split between chunks whole", () => {
    const bytes = enc('{"m":"é€😀"}\n');
    for (let cut = 1; cut < bytes.length; cut++) {
      const s = new LineSplitter();
      const lines = [...s.push(bytes.subarray(0, cut)), ...s.push(bytes.subarray(cut)), ...s.end()];
      assert.deepEqual(lines, ['{"m":"é€😀"}'], `cut at ${cut}`);
    }
  });

  it("handles one byte at a time", () => {
    const bytes = enc('{"x":1}\n{"y":2}\n');
    const s = new LineSplitter();
    const lines: string[] = [];
    for (const b of bytes) lines.push(...s.push(Uint8Array.of(b)));
    assert.deepEqual(lines, ['{"x":1}', '{"y":2}']);
  });
});

describe("readNdjson", () => {
  it("yields each value as soon as its line is complete", async () => {
    let released!: () => void;
    const gate = new Promise<void>((r) => (released = r));
    async function* body() {
      yield enc('{"n":1}\n{"n"');
      await gate;
      yield enc(":2}");
    }
    const it = readNdjson(body());
    assert.deepEqual((await it.next()).value, { n: 1 }); // before the rest exists
    released();
    assert.deepEqual((await it.next()).value, { n: 2 });
    assert.equal((await it.next()).done, true);
  });

  it("names a line that is not JSON", async () => {
    async function* body() {
      yield enc("not json\n");
    }
    await assert.rejects(async () => {
      for await (const _ of readNdjson(body()));
    }, /invalid NDJSON line: not json/);
  });
});
