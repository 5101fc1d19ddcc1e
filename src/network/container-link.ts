import { realNetHost, type NetHost } from "./net-host.js";
import type { NetAttachment } from "./networks.js";

/**
 * Moves a container's end of its veth pair into the network namespace of
 * its init `pid` (the container's own, which crun made in the container's
 * user namespace, so the container mounts a sysfs of its own: with a
 * namespace corral made beforehand, owned by the host's user namespace,
 * crun binds the host's whole /sys instead, every host link in view),
 * names it eth0 and gives it its address and default route. The namespace
 * is named (`ip netns attach`) so it can be found again and outlives the
 * container's processes with the link in it. A namespace of an earlier run
 * (a persistent sandbox started again) gives the link back first.
 */
export async function joinNamespace(att: NetAttachment, pid: number, host: NetHost = realNetHost): Promise<void> {
  const c = att.container;
  if (!c) return;
  if ((await host.namespaces()).includes(c.netns)) await leaveNamespace(att, host);
  await host.ip([`netns attach ${c.netns} ${pid}`, `link set ${c.peer} netns ${c.netns}`]);
  await host.ip(
    [`link set ${c.peer} name eth0`, `addr add ${att.address}/${att.prefix} dev eth0`, "link set eth0 up", "link set lo up", `route add default via ${att.gateway}`],
    c.netns,
  );
}

/** The container's link back on the host, waiting as before (its namespace is going: a stop), and the namespace's name let go. */
export async function leaveNamespace(att: NetAttachment, host: NetHost = realNetHost): Promise<void> {
  const c = att.container;
  if (!c || !(await host.namespaces()).includes(c.netns)) return;
  // `netns PID` inside the namespace names the namespace of that pid: ours, the host's.
  // Renamed inside first: the host has an eth0 of its own.
  await host.ip(["link set eth0 down", `link set eth0 name ${c.peer}`, `link set ${c.peer} netns ${process.pid}`], c.netns).catch(() => {});
  await host.ip([`netns delete ${c.netns}`]).catch(() => {});
}
