import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { Sandboxes, type SandboxesOptions } from "../../src/runtime/sandboxes.js";
import { POOL_TENANT } from "../../src/runtime/pools.js";
import { removeEmptyParent } from "../../src/host/cgroups.js";
import { findLeaks } from "./leaks.js";

export interface TestState {
  readonly s: Sandboxes;
  readonly stateDir: string;
  readonly cgroupParent: string;
  /** Its sandbox network (address range, resolver upstream): a daemon on the state dir gets the same. */
  readonly network: ReturnType<typeof testNetwork>;
  /** Removes every sandbox, asserts nothing leaked, deletes the state dir. */
  close(): Promise<void>;
}

/**
 * A test's sandbox network: a /24 of 198.19.0.0/16 (benchmark range: not
 * this machine's 192.0.2.0/24, and nothing real answers there) picked at
 * random, so suites running at once rarely meet (the range check at set-up
 * refuses one that does), and a resolver upstream nobody answers on
 * unless the test gives its own upstream namespace's server.
 */
export function testNetwork(given: SandboxesOptions["network"] = {}): { range: string; dnsUpstream: readonly string[] } {
  return { range: given.range ?? `198.19.${randomBytes(1)[0]!}.0/24`, dnsUpstream: given.dnsUpstream ?? ["127.0.0.1:9"] };
}

/**
 * A fresh state dir (and cgroup parent) owned by one test suite. Nothing in
 * it comes from an earlier run; close() removes all of it.
 */
export async function freshState(label: string, opts: Pick<SandboxesOptions, "longLived" | "network"> = {}): Promise<TestState> {
  const base = await fsp.mkdtemp(path.join(os.tmpdir(), `corral-${label}-`));
  // Sandboxes' user namespace must traverse to the bind-mounted agent.
  await fsp.chmod(base, 0o711);
  const stateDir = path.join(base, "state");
  const cgroupParent = `corral-test-${label}-${randomBytes(3).toString("hex")}`;
  const network = testNetwork(opts.network);
  // What this process starts (a CLI on the state dir) gets the same: never the
  // default range nor the host's resolvers.
  process.env["CORRAL_NET_RANGE"] ??= network.range;
  process.env["CORRAL_DNS_UPSTREAM"] ??= network.dnsUpstream!.join(",");
  const s = await Sandboxes.open({ stateDir, cgroupParent, ...opts, network });
  return {
    s,
    stateDir,
    cgroupParent,
    network,
    async close() {
      for (const sb of [...(await s.list()), ...(await s.list({ tenant: POOL_TENANT }))]) await s.destroy(sb.id).catch(() => {});
      const rows = (s.db.prepare("SELECT count(*) AS n FROM sandboxes").get() as { n: number }).n;
      s.close();
      const leaks = await findLeaks(stateDir, cgroupParent, s.cgroupMode);
      await removeEmptyParent(s.cgroupMode, cgroupParent);
      await fsp.rm(base, { recursive: true, force: true });
      if (rows) leaks.push(`${rows} sandbox rows left in the database`);
      if (leaks.length) throw new Error(`leaked after the suite:\n${leaks.join("\n")}`);
    },
  };
}
