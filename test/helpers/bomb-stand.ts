import assert from "node:assert/strict";
import { freshState, type TestState } from "./state.js";
import { httpExec, request, testDaemon } from "./daemon.js";
import type { Daemon } from "../../src/server/daemon.js";

/**
 * A stand for an attack from one sandbox on its neighbours: a real daemon
 * on a fresh state dir, a tenant, the attacker's sandbox and a sibling.
 */
export interface BombStand {
  readonly t: TestState;
  readonly d: Daemon;
  readonly key: string;
  readonly attacker: string;
  readonly sibling: string;
  /** The daemon answers and the sibling runs a command: nothing of the attack reached them. */
  assertUnharmed(): Promise<void>;
  close(): Promise<void>;
}

export async function bombStand(label: string, backend: string, resources: Record<string, unknown>): Promise<BombStand> {
  const t = await freshState(label);
  const d = await testDaemon(t);
  const key = d.sandboxes.tenants.createKey(label).key;
  const make = async () => {
    const r = await request(d.url, "POST", "/v1/sandboxes", { key, json: { template: "busybox", backend, resources } });
    assert.equal(r.status, 201, r.text);
    return r.json<{ id: string }>().id;
  };
  const attacker = await make();
  const sibling = await make();
  return {
    t,
    d,
    key,
    attacker,
    sibling,
    async assertUnharmed() {
      assert.equal((await request(d.url, "GET", "/health")).status, 200);
      const r = await httpExec(d.url, key, sibling, "echo alive");
      assert.deepEqual([r.status, r.exitCode, r.stdout], [200, 0, "alive\n"]);
    },
    async close() {
      await d.close();
      await t.close();
    },
  };
}
