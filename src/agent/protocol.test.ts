import { test } from "node:test";
import assert from "node:assert/strict";
import { encodeFrame, FrameDecoder, ProtocolError, MAX_PAYLOAD } from "./protocol.js";

test("frames round trip across arbitrary chunking", () => {
  const frames = [
    encodeFrame({ op: "hello", id: 1 }),
    encodeFrame({ ev: "stdout", id: 2 }, Buffer.from("hé\0llo")),
    encodeFrame({ ev: "data", id: 3 }, Buffer.alloc(MAX_PAYLOAD, 7)),
  ];
  const wire = Buffer.concat(frames);
  for (const step of [1, 7, 8, 65536, wire.length]) {
    const d = new FrameDecoder();
    const got = [];
    for (let i = 0; i < wire.length; i += step) got.push(...d.push(wire.subarray(i, i + step)));
    assert.equal(got.length, 3);
    assert.deepEqual(got[0]!.header, { op: "hello", id: 1 });
    assert.equal(got[1]!.payload.toString(), "hé\0llo");
    assert.equal(got[2]!.payload.length, MAX_PAYLOAD);
  }
});

test("oversized and malformed frames are protocol errors", () => {
  const big = Buffer.alloc(8);
  big.writeUInt32BE(10, 0);
  big.writeUInt32BE(MAX_PAYLOAD + 1, 4);
  assert.throws(() => new FrameDecoder().push(big), ProtocolError);
  const notObject = Buffer.concat([Buffer.from([0, 0, 0, 2, 0, 0, 0, 0]), Buffer.from("[]")]);
  assert.throws(() => new FrameDecoder().push(notObject), ProtocolError);
  assert.throws(() => encodeFrame({}, Buffer.alloc(MAX_PAYLOAD + 1)), RangeError);
});
