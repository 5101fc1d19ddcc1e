import path from "node:path";
import { realHost } from "../../host/host.js";
import type { BackendContext } from "../backend.js";
import { ContainerBackend, containerOptions } from "../container/container-backend.js";
import { RunscRuntime } from "./runsc.js";

/**
 * gVisor sandboxes: the container backend's bundle, overlay and agent
 * socket run by runsc instead of crun, so the sandbox's system calls go to
 * gVisor's sentry (a kernel in user space) rather than the host kernel.
 * runsc's state is in `<state>/runsc`. What differs is in runsc.ts and
 * DESIGN.md ("How a gVisor sandbox is made").
 */
export function gvisorBackend(ctx: BackendContext): ContainerBackend {
  return new ContainerBackend(containerOptions(ctx), new RunscRuntime(path.join(ctx.stateDir, "runsc"), realHost));
}
