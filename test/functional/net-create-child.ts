// Helper process for network-scale.test: creates networked sandboxes
// several at once and is killed with SIGKILL while it does, as a daemon
// killed mid-create would be. Its network options come from the
// environment freshState set (CORRAL_NET_RANGE, CORRAL_DNS_UPSTREAM).
import { Sandboxes } from "../../src/runtime/sandboxes.js";

const [stateDir, cgroupParent] = process.argv.slice(2);
const s = await Sandboxes.open({ stateDir: stateDir!, cgroupParent: cgroupParent!, longLived: true });
await Promise.all([1, 2, 3, 4].map(() => s.create({ template: "busybox", network: { networks: ["crash"] } })));
