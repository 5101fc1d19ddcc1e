import type net from "node:net";
import { connectHybridVsock } from "../../agent/hybrid-vsock.js";

/** How long one client's vsock CONNECT may take before its connection is dropped (the guest accepts in well under this once up). */
const CONNECT_TIMEOUT_MS = 2000;

/**
 * Serves one client of a VM's agent.sock when the VMM gives the guest a
 * vsock device with a hybrid vsock socket (Cloud Hypervisor, Firecracker):
 * a vsock connection of its own to the agent's port, and the bytes
 * relayed both ways. The agent sees one connection per client, as in a
 * container, so no mux is needed (QEMU's virtio-serial port is one stream:
 * mux.ts). Relayed with backpressure: neither side buffers more than a
 * stream's high-water mark. A client whose CONNECT the VMM refuses (the
 * guest is not up yet) is closed, as a missing socket would be.
 */
export function bridgeToVsock(client: net.Socket, uds: string, port: number): void {
  client.pause();
  client.on("error", () => client.destroy());
  connectHybridVsock(uds, port, CONNECT_TIMEOUT_MS).then(
    (guest) => {
      if (client.destroyed) {
        guest.destroy();
        return;
      }
      const end = () => {
        client.destroy();
        guest.destroy();
      };
      guest.on("error", end);
      guest.on("close", end);
      client.on("close", end);
      client.pipe(guest);
      guest.pipe(client);
      guest.resume();
      client.resume();
    },
    () => client.destroy(),
  );
}
