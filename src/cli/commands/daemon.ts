import { InvalidArgumentError } from "../../core/errors.js";
import { print } from "../stdio.js";
import type { Action } from "./action.js";

/** `corral daemon`: corrald on a loopback address or a unix socket, until SIGTERM or SIGINT. */
export const daemon: Action = async (ctx, p) => {
  const f = p.opts as {
    listen: string;
    socket?: string;
    bodyLimit: string;
    adminTenant: string[];
    templateImportTenant: string[];
    allowShare: string[];
    declared?: string;
    e2bListen?: string;
    e2bBackend: string;
    defaultNetwork: string;
    netRange?: string;
    dnsUpstream: string[];
    portDomain: string;
  };
  if (f.defaultNetwork !== "none" && f.defaultNetwork !== "nat") throw new InvalidArgumentError(`--default-network is none or nat, got "${f.defaultNetwork}"`);
  const [host, port] = hostPort("--listen", f.listen, !f.socket);
  if (!["container", "vm", "gvisor"].includes(f.e2bBackend)) throw new InvalidArgumentError(`--e2b-backend must be container, vm or gvisor, got "${f.e2bBackend}"`);
  const e2b = f.e2bListen === undefined ? undefined : hostPort("--e2b-listen", f.e2bListen, true);
  const bodyLimit = Number(f.bodyLimit);
  if (!Number.isInteger(bodyLimit) || bodyLimit < 1) throw new InvalidArgumentError(`--body-limit must be a number of bytes, got "${f.bodyLimit}"`);
  const { startDaemon } = await import("../../server/daemon.js");
  const stateDir = ctx.stateDir;
  const listen = f.socket ? { socket: f.socket } : { host, port };
  const network = { ...(f.netRange ? { range: f.netRange } : {}), ...(f.dnsUpstream.length ? { dnsUpstream: f.dnsUpstream } : {}) };
  const d = await startDaemon({
    ...(stateDir ? { stateDir } : {}),
    listen,
    bodyLimit,
    adminTenants: f.adminTenant,
    templateImporters: f.templateImportTenant,
    ...(f.allowShare.length ? { allowedShares: f.allowShare } : {}),
    ...(f.declared ? { declaredFile: f.declared } : {}),
    ...(e2b ? { e2b: { listen: { host: e2b[0], port: e2b[1] }, backend: f.e2bBackend as "container" | "vm" | "gvisor" } } : {}),
    defaultNetwork: f.defaultNetwork,
    network,
    portDomain: f.portDomain,
  });
  await print(`corrald listening on ${d.url}\n${d.e2bUrl ? `corrald's E2B API on ${d.e2bUrl} (E2B_API_URL and E2B_SANDBOX_URL)\n` : ""}`);
  const stop = () => {
    d.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  // systemctl reload: the declared state again.
  process.on("SIGHUP", () => void d.reload());
};

/** HOST:PORT of a listen flag (checked only when it is used). */
function hostPort(flag: string, v: string, used: boolean): [string, number] {
  const i = v.lastIndexOf(":");
  const port = Number(v.slice(i + 1));
  if (used && (i <= 0 || !Number.isInteger(port) || port < 0 || port > 65535)) {
    throw new InvalidArgumentError(`${flag} must be HOST:PORT (e.g. 127.0.0.1:7070), got "${v}"`);
  }
  return [v.slice(0, i), port];
}
