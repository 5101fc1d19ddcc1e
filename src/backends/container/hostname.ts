import { BackendError } from "../../core/errors.js";
import type { Host } from "../../host/host.js";

/**
 * Renames a running container: `corral-launch --set-hostname PID START`
 * joins the UTS namespace of its init and sets the name read from stdin (the
 * sandbox itself cannot: it has no CAP_SYS_ADMIN). Resolves once the
 * helper has reported "ok", that is once the kernel has the name.
 */
export async function setContainerHostname(
  host: Host,
  launcher: string,
  init: { readonly pid: number; readonly startTime: number },
  hostname: string,
  timeoutMs = 5000,
): Promise<void> {
  // The start time lets the helper refuse a process that took the pid since.
  const r = await host
    .run(launcher, ["--set-hostname", String(init.pid), String(init.startTime)], { input: `${hostname}\n`, timeoutMs, allowFailure: true })
    .catch((e: Error) => {
      throw new BackendError(`cannot run ${launcher}: ${e.message}`, { cause: e });
    });
  if (r.code !== 0 || !r.stdout.includes("ok\n")) {
    throw new BackendError(`could not set the hostname: ${r.stderr.trim() || `helper ended (${r.code})`}`);
  }
}
