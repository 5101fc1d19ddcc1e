import { vmIdentity } from "./identity.js";
import { AGENT_VSOCK_PORT, type VmPlan } from "./plan.js";

/**
 * Plans the way the VM backend makes them (vm-plan.ts), for the drivers'
 * unit tests: the root erofs image read-only first, an optional writable
 * data disk, hybrid vsock in the sandbox dir (CH, FC) or the shim's
 * virtio-serial agent socket (QEMU), identity from the name.
 */
export function samplePlan(
  name: string,
  o: { net?: boolean; persistent?: boolean; vcpus?: number; memoryMiB?: number; virtioSerial?: boolean } = {},
): VmPlan {
  const identity = vmIdentity(name);
  const dir = `/var/lib/corral/sandboxes/${name}`;
  return {
    name,
    kernel: "/var/lib/corral/vm/vmlinux",
    initrd: "/var/lib/corral/vm/initrd.cpio.gz",
    cmdline: `console=ttyS0 reboot=k panic=-1 quiet corral.name=${name}`,
    vcpus: o.vcpus ?? 1,
    memoryMiB: o.memoryMiB ?? 512,
    disks: [
      { id: "root", path: "/var/lib/corral/store/images/0123abcd.erofs", readOnly: true },
      ...(o.persistent ? [{ id: "data", path: `${dir}/data.img`, readOnly: false }] : []),
    ],
    agent: o.virtioSerial
      ? { kind: "virtio-serial", socket: `${dir}/agent.sock` }
      : { kind: "vsock", cid: identity.cid, port: AGENT_VSOCK_PORT, uds: `${dir}/vsock.sock` },
    ...(o.net ? { net: { tap: identity.tap, mac: identity.mac } } : {}),
    consoleLog: `${dir}/console.log`,
    identity,
  };
}
