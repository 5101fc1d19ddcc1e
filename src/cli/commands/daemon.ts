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
    defaultNetwork: string;
    netRange?: string;
    dnsUpstream: string[];
    portDomain: string;
  };
  if (f.defaultNetwork !== "none" && f.defaultNetwork !== "nat") throw new InvalidArgumentError(`--default-network is none or nat, got "${f.defaultNetwork}"`);
  const i = f.listen.lastIndexOf(":");
  const port = Number(f.listen.slice(i + 1));
  if (!f.socket && (i <= 0 || !Number.isInteger(port) || port < 0 || port > 65535)) {
    throw new InvalidArgumentError(`--listen must be HOST:PORT (e.g. 127.0.0.1:7070), got "${f.listen}"`);
  }
  const bodyLimit = Number(f.bodyLimit);
  if (!Number.isInteger(bodyLimit) || bodyLimit < 1) throw new InvalidArgumentError(`--body-limit must be a number of bytes, got "${f.bodyLimit}"`);
  const { startDaemon } = await import("../../server/daemon.js");
  const stateDir = ctx.stateDir;
  const listen = f.socket ? { socket: f.socket } : { host: f.listen.slice(0, i), port };
  const network = { ...(f.netRange ? { range: f.netRange } : {}), ...(f.dnsUpstream.length ? { dnsUpstream: f.dnsUpstream } : {}) };
  const d = await startDaemon({
    ...(stateDir ? { stateDir } : {}),
    listen,
    bodyLimit,
    adminTenants: f.adminTenant,
    templateImporters: f.templateImportTenant,
    ...(f.allowShare.length ? { allowedShares: f.allowShare } : {}),
    ...(f.declared ? { declaredFile: f.declared } : {}),
    defaultNetwork: f.defaultNetwork,
    network,
    portDomain: f.portDomain,
  });
  await print(`corrald listening on ${d.url}\n`);
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
