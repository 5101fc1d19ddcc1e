// Networks at scale and after a crash: 50 nat sandboxes at once each reach
// the test's upstream namespace, and nothing of corral's (namespace,
// link, tap, nftables table, resolver, slot file) is left once they are
// removed, nor after a process creating networked sandboxes was killed
// with SIGKILL and the state dir opened again.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freshState, type TestState } from "../helpers/state.js";
import { findLeaks } from "../helpers/leaks.js";
import { runKilledAfter } from "../helpers/killed-child.js";
import { startUpstream, type Upstream } from "../helpers/upstream.js";
import { Sandboxes } from "../../src/runtime/sandboxes.js";

const here = path.dirname(fileURLToPath(import.meta.url));

describe("networks at scale and after a crash", () => {
  let up: Upstream;
  let t: TestState;
  before(async () => {
    up = await startUpstream();
    // A /24: 50 sandboxes and room to spare.
    t = await freshState("netscale", { network: { dnsUpstream: [up.dns] } });
  });
  after(async () => {
    await t?.close();
    await up?.close();
  });

  it("runs 50 nat sandboxes at once, each reaching upstream by name", async () => {
    const ids: string[] = [];
    for (let batch = 0; batch < 5; batch++) {
      ids.push(...(await Promise.all(Array.from({ length: 10 }, () => t.s.create({ template: "busybox", network: "nat" })))).map((s) => s.id));
    }
    const fetched = await Promise.all(
      ids.map(async (id) => {
        const out: Buffer[] = [];
        const r = await t.s.exec(id, { cmd: "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 www.upstream.test 80", timeoutMs: 30_000 }, { onStdout: (b) => out.push(b) });
        return r.exitCode === 0 && Buffer.concat(out).toString().includes("200 OK");
      }),
    );
    assert.equal(fetched.filter(Boolean).length, 50);
    const addresses = new Set((await t.s.list()).map((s) => s.id));
    assert.equal(addresses.size, 50);
    await Promise.all(ids.map((id) => t.s.destroy(id)));
    assert.deepEqual(await findLeaks(t.stateDir, t.cgroupParent, t.s.cgroupMode), []);
  });

  it("leaves nothing after a creator killed mid-create and the next open", async () => {
    for (const delay of [40, 150, 400, 900]) {
      const child = await runKilledAfter(path.join(here, "net-create-child.js"), [t.stateDir, t.cgroupParent], delay);
      const again = await Sandboxes.open({ stateDir: t.stateDir, cgroupParent: t.cgroupParent, network: t.network });
      for (const sb of await again.list()) await again.destroy(sb.id);
      again.close();
      assert.deepEqual(await findLeaks(t.stateDir, t.cgroupParent, t.s.cgroupMode), [], `after a kill at ${delay} ms${child.endedBySelf ? ` (it ended first, exit ${child.code})` : ""}`);
    }
  });
});
