import { runCommand } from "../host/command.js";
import { nativeBinary } from "../host/native.js";
import { procStat } from "../host/process.js";
import type { NetAttachment } from "./networks.js";

/**
 * Moves a container's end of its veth pair into the network namespace of
 * its init (the container's own, which crun made in the container's user
 * namespace, so the container mounts a sysfs of its own: with a namespace
 * corral made beforehand, owned by the host's user namespace, crun binds
 * the host's whole /sys instead, every host link in view), named eth0,
 * with its address and default route, the loopback up: corral-netjoin
 * (native/netjoin.c), one short process. `ip` took two, ~15 ms each from a
 * large node process here. The namespace, and the pair with it, go when
 * the container's processes do; a start again makes the pair anew
 * (Networks.relink).
 */
export async function joinNamespace(att: NetAttachment, init: { pid: number; startTime?: number | undefined }): Promise<void> {
  const c = att.container;
  if (!c) return;
  const startTime = init.startTime ?? procStat(init.pid)?.startTime;
  if (!startTime) throw new Error(`the container's init ${init.pid} is gone`);
  await runCommand(nativeBinary("corral-netjoin"), [String(init.pid), String(startTime), c.peer, `${att.address}/${att.prefix}`, att.gateway]);
}
