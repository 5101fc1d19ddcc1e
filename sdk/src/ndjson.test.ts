import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { PassThrough, Readable } from "node:stream";
import { LineSplitter, eachNdjson } from "./ndjson.js";

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

describe("eachNdjson", () => {
  it("hands over each value as soon as its line is complete", async () => {
    const body = new PassThrough();
    const seen: unknown[] = [];
    const done = eachNdjson(body, (v) => void seen.push(v));
    body.write(enc('{"n":1}\n{"n"'));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(seen, [{ n: 1 }]); // before the rest exists
    body.end(enc(":2}"));
    await done;
    assert.deepEqual(seen, [{ n: 1 }, { n: 2 }]);
  });

  it("waits for a promise the callback returns before the next value, in order", async () => {
    const body = new PassThrough();
    const order: string[] = [];
    let release!: () => void;
    const done = eachNdjson(body, (v) => {
      const n = (v as { n: number }).n;
      order.push(`start ${n}`);
      if (n === 1) return new Promise<void>((r) => (release = () => (order.push("end 1"), r())));
      return undefined;
    });
    body.end(enc('{"n":1}\n{"n":2}\n'));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(order, ["start 1"]);
    release();
    await done;
    assert.deepEqual(order, ["start 1", "end 1", "start 2"]);
  });

  it("names a line that is not JSON, and passes on what the callback throws", async () => {
    await assert.rejects(eachNdjson(Readable.from([enc("not json\n")]), () => {}), /invalid NDJSON line: not json/);
    await assert.rejects(
      eachNdjson(Readable.from([enc('{"a":1}\n')]), () => {
        throw new Error("no thanks");
      }),
      /no thanks/,
    );
  });
});
