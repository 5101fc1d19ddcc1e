import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { Sandboxes, type SandboxesOptions } from "../src/runtime/sandboxes.js";
import { POOL_TENANT } from "../src/runtime/pools.js";
import { removeEmptyParent } from "../src/host/cgroups.js";

/** A fresh state dir and cgroup parent for one benchmark run; dispose() removes every trace. */
export async function benchState(label: string, opts: Pick<SandboxesOptions, "network"> = {}): Promise<{ s: Sandboxes; cgroupParent: string; dispose(): Promise<void> }> {
  const base = await fsp.mkdtemp(path.join(os.tmpdir(), `corral-${label}-`));
  await fsp.chmod(base, 0o711); // sandboxes' user namespace traverses to the agent
  const cgroupParent = `corral-${label}-${randomBytes(3).toString("hex")}`;
  // As corrald opens it: with a spare VM shim.
  const s = await Sandboxes.open({ stateDir: path.join(base, "state"), cgroupParent, longLived: true, ...opts });
  return {
    s,
    cgroupParent,
    async dispose() {
      for (const x of [...(await s.list()), ...(await s.list({ tenant: POOL_TENANT }))]) await s.destroy(x.id).catch(() => {});
      await s.releaseNetworkSpares();
      s.close();
      await removeEmptyParent(s.cgroupMode, cgroupParent);
      await fsp.rm(base, { recursive: true, force: true });
    },
  };
}
