import type { BackendContext, BackendFactory, BackendKind, SandboxBackend } from "./backend.js";
import { containerBackend } from "./container/container-backend.js";
import { gvisorBackend } from "./gvisor/gvisor-backend.js";
import { vmBackend } from "./vm/vm-backend.js";

/**
 * Every kind of sandbox corral can make, one line each: a new backend is
 * a folder under backends/ and a line here. The runtime knows only this
 * table and backend.ts.
 */
export const BACKENDS: Readonly<Record<BackendKind, BackendFactory>> = {
  container: containerBackend,
  gvisor: gvisorBackend,
  vm: vmBackend,
};

/** One backend of each kind for a state dir. */
export function openBackends(ctx: BackendContext): Map<BackendKind, SandboxBackend> {
  return new Map(Object.entries(BACKENDS).map(([kind, make]) => [kind as BackendKind, make(ctx)]));
}
