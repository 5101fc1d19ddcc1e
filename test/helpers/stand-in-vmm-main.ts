// The stand-in VMM as a process (stand-in-vmm.ts): `node
// stand-in-vmm-main.js UDS AGENT_SOCKET`. It prints a serial console on
// stdout and a message on stderr, serves the hybrid vsock handshake on UDS
// for the agent's port, relaying to AGENT_SOCKET, and stops accepting on
// SIGUSR1 (the guest's agent is gone).
import { AGENT_VSOCK_PORT } from "../../src/backends/vm/plan.js";
import { relayToAgent, serveHybridVsock } from "./stand-in-vmm.js";

const [uds, agent] = process.argv.slice(2);
if (!uds || !agent) throw new Error("usage: stand-in-vmm-main UDS AGENT_SOCKET");
process.stdout.write(`Linux version 6.1 (stand-in)\ncorral-init: agent on vsock port ${AGENT_VSOCK_PORT}\n`);
process.stderr.write("stand-in vmm: started\n");
const listening = serveHybridVsock(uds, (port, conn) => (port === AGENT_VSOCK_PORT ? relayToAgent(conn, agent) : conn.destroy()));
process.on("SIGUSR1", () => void listening.then((srv) => srv.close()));
process.stdin.resume(); // the shim's serial input: open, never written
