import { test } from "node:test";
import assert from "node:assert/strict";
import { binaryFrame, CHUNK, IncomingUpload, Outgoing, parseBinaryFrame, SOCKET_HIGH, WINDOW } from "./connect-flow.js";

test("a binary frame names its request in 8 bytes; an empty one ends the bytes", () => {
  const f = binaryFrame(2 ** 40 + 3, Buffer.from("abc"));
  assert.equal(f.length, 11);
  assert.deepEqual(parseBinaryFrame(f), { id: 2 ** 40 + 3, payload: Buffer.from("abc") });
  assert.equal(parseBinaryFrame(binaryFrame(7))?.payload.length, 0);
  assert.equal(parseBinaryFrame(Buffer.alloc(7)), undefined);
  assert.equal(parseBinaryFrame(Buffer.alloc(8, 0xff)), undefined, "an id past 2^53 is not a request's");
});

test("an outgoing stream pauses at a window unacknowledged, or a full socket, and resumes after", () => {
  const calls: string[] = [];
  let buffered = 0;
  const waiting = new Set<Outgoing>();
  const out = new Outgoing({ pause: () => calls.push("pause"), resume: () => calls.push("resume") }, () => buffered, waiting);
  out.sentBytes(WINDOW - 1);
  assert.deepEqual(calls, []);
  out.sentBytes(1);
  assert.deepEqual(calls, ["pause"]);
  assert.ok(waiting.has(out));
  out.sentBytes(CHUNK); // what the source had already read
  out.credit(CHUNK);
  assert.deepEqual(calls, ["pause"], "still a window unacknowledged");
  out.credit(1);
  assert.deepEqual(calls, ["pause", "resume"]);
  assert.ok(!waiting.has(out));
  buffered = SOCKET_HIGH + 1;
  out.check();
  assert.deepEqual(calls, ["pause", "resume", "pause"]);
  buffered = 0;
  out.check();
  assert.deepEqual(calls, ["pause", "resume", "pause", "resume"]);
});

test("an upload grants credit as its reader consumes, and refuses a peer that overruns its window", async () => {
  const grants: number[] = [];
  const up = new IncomingUpload((n) => grants.push(n));
  for (let sent = 0; sent < WINDOW; sent += CHUNK) up.push(Buffer.alloc(CHUNK, 1));
  assert.deepEqual(grants, [], "nothing consumed yet");
  let got = 0;
  up.stream.on("data", (c: Buffer) => (got += c.length));
  await new Promise((r) => setImmediate(r));
  assert.equal(got, WINDOW);
  // Credit for all but what may still sit in the stream's buffer when it last asked for more.
  const granted = grants.reduce((a, b) => a + b, 0);
  assert.ok(granted >= WINDOW - CHUNK && granted <= WINDOW, `${grants}`);
  up.push(Buffer.alloc(0));
  await new Promise((r) => up.stream.once("end", r));

  const greedy = new IncomingUpload(() => {});
  const failed = new Promise<Error>((r) => greedy.stream.once("error", r));
  for (let sent = 0; sent <= WINDOW + CHUNK; sent += CHUNK) greedy.push(Buffer.alloc(CHUNK));
  assert.match((await failed).message, /went over its window/);
});
