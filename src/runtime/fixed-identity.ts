import { ConflictError } from "../core/errors.js";
import type { ResolvedSpec } from "../core/sandbox-spec.js";
import type { RuntimeContext } from "./context.js";

/**
 * Refuses a VM whose fixed MAC or vsock CID (spec `identity`) another VM of
 * this state dir has, fixed or derived from its name: a second QEMU on a
 * CID in use fails to start ("unable to set guest cid"), and one MAC twice
 * on a bridge has both VMs lose frames. The other sandbox is not named: it
 * may be another tenant's. `self`: the sandbox taking the spec (reconfigure).
 */
export function checkIdentityFree(rt: RuntimeContext, spec: ResolvedSpec, self?: string): void {
  const fixed = spec.identity;
  if (!fixed) return;
  const vm = rt.backend("vm");
  for (const r of rt.rows.all()) {
    if (r.spec.backend !== "vm" || r.id === self) continue;
    const id = vm.identity?.(r.name, r.spec);
    if (fixed.mac !== undefined && id?.mac === fixed.mac) throw new ConflictError(`MAC ${fixed.mac} is another sandbox's: choose another identity.mac`);
    if (fixed.cid !== undefined && id?.cid === fixed.cid) throw new ConflictError(`vsock CID ${fixed.cid} is another sandbox's: choose another identity.cid`);
  }
}
