// Helper process for cleanup.test: creates a sandbox and gets killed.
import { Sandboxes } from "../../src/runtime/sandboxes.js";

const [stateDir, cgroupParent] = process.argv.slice(2);
const s = await Sandboxes.open({ stateDir: stateDir!, cgroupParent: cgroupParent! });
await s.create({ template: "busybox" });
