// Twenty sandboxes at once, each sees only its own files.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { freshState, type TestState } from "../helpers/state.js";

describe("many sandboxes", () => {
  let t: TestState;
  before(async () => {
    t = await freshState("many");
  });
  after(async () => t.close());

  it("runs 20 at once, each seeing only its own files", async () => {
    const sbs = await Promise.all(Array.from({ length: 20 }, (_, i) => t.s.create({ template: "busybox", name: `iso-${i}` })));
    await Promise.all(
      sbs.map(async (sb, i) => {
        const r = await t.s.exec(sb.id, { cmd: `echo ${i} > /tmp/mine-${i}` });
        assert.equal(r.exitCode, 0);
      }),
    );
    await Promise.all(
      sbs.map(async (sb, i) => {
        const out: Buffer[] = [];
        await t.s.exec(sb.id, { cmd: "ls /tmp; cat /tmp/mine-*" }, { onStdout: (b) => out.push(b) });
        assert.equal(Buffer.concat(out).toString(), `mine-${i}\n${i}\n`);
      }),
    );
    assert.equal((await t.s.list()).filter((x) => x.status === "running").length, 20);
    await Promise.all(sbs.map((sb) => t.s.destroy(sb.id)));
    assert.equal((await t.s.list()).length, 0);
  });
});
