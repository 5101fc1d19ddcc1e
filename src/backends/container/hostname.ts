import { spawn } from "node:child_process";
import { BackendError } from "../../core/errors.js";

/**
 * Renames a running container: `corral-launch --set-hostname PID START`
 * joins the UTS namespace of its init and sets the name read from stdin (the
 * sandbox itself cannot: it has no CAP_SYS_ADMIN). Resolves once the
 * helper reports "ok", that is once the kernel has the name.
 */
export function setContainerHostname(
  launcher: string,
  init: { readonly pid: number; readonly startTime: number },
  hostname: string,
  timeoutMs = 5000,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    // The start time lets the helper refuse a process that took the pid since.
    const child = spawn(launcher, ["--set-hostname", String(init.pid), String(init.startTime)], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    let settled = false;
    const finish = (e?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (e) reject(e);
      else resolve();
    };
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      finish(new BackendError(`could not set the hostname within ${timeoutMs} ms`));
    }, timeoutMs);
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
      if (out.includes("ok\n")) finish();
    });
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    child.stdin.on("error", () => {}); // it died first: reported at close
    child.once("error", (e) => finish(new BackendError(`cannot run ${launcher}: ${e.message}`, { cause: e })));
    child.once("close", (code, signal) => finish(new BackendError(`could not set the hostname: ${err.trim() || `helper ended (${signal ?? code})`}`)));
    child.stdin.end(`${hostname}\n`);
  });
}
