// The shim's hybrid vsock wiring (Cloud Hypervisor, Firecracker), which
// no VMM on these hosts exercises: a stand-in VMM process (node running
// test/helpers/stand-in-vmm-main.ts, given as the launch's binary) prints a
// serial console on stdout and a message on stderr, and serves the
// documented hybrid vsock handshake on the launch's socket, relaying to a
// real corral-agent. The shim must run it, keep its console, serve
// agent.sock through it, say "ready", and record how it ended. (QEMU's
// wiring is exercised by every VM functional suite.)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { processRunning } from "../../host/process.js";
import { AgentClient } from "../../agent/client.js";
import { vmIdentity } from "./identity.js";
import { AGENT_VSOCK_PORT } from "./plan.js";
import { shimPaths, type ShimConfig, type ShimExit } from "./shim-files.js";
import { ShimLauncher } from "./shim-launcher.js";
import { startAgent, type TestAgent } from "../../../test/helpers/native-agent.js";
import { STAND_IN_VMM_MAIN } from "../../../test/helpers/stand-in-vmm.js";

let dir: string;
let agent: TestAgent;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "corral-shimvs-"));
  agent = await startAgent(dir, "real-agent.sock");
});

after(() => {
  agent.proc.kill("SIGKILL");
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Starts a shim for a VM in a fresh directory under `dir`; resolves with what it said on fd 3. */
async function startVm(name: string): Promise<{ vm: string; said: string; p: ReturnType<typeof shimPaths> }> {
  const vm = path.join(dir, name);
  fs.mkdirSync(vm);
  const p = shimPaths(vm);
  const cfg: ShimConfig = {
    vmm: "firecracker",
    binary: process.execPath,
    args: [STAND_IN_VMM_MAIN, p.vsockSocket, agent.socket],
    wiring: { kind: "hybrid-vsock", uds: p.vsockSocket, port: AGENT_VSOCK_PORT },
    guestStop: "reboot",
    identity: vmIdentity(name),
    bootTimeoutMs: 10_000,
  };
  fs.writeFileSync(p.config, JSON.stringify(cfg));
  const c = new ShimLauncher(false).start(vm);
  const said = await new Promise<string>((resolve) => {
    let text = "";
    const r = c.stdio[3]!;
    r.on("data", (d: Buffer) => (text += d.toString()));
    r.on("end", () => resolve(text.trim()));
  });
  return { vm, said, p };
}

async function exitOf(p: ReturnType<typeof shimPaths>): Promise<ShimExit> {
  for (let i = 0; i < 500 && !fs.existsSync(p.exit); i++) await new Promise((r) => setTimeout(r, 20));
  for (let i = 0; i < 100 && fs.existsSync(p.shimPid); i++) await new Promise((r) => setTimeout(r, 20));
  return JSON.parse(fs.readFileSync(p.exit, "utf8")) as ShimExit;
}

test("runs the VMM, keeps its console, serves agent.sock over hybrid vsock; a VMM that dies is a crash", async () => {
  const { said, p } = await startVm("crash");
  assert.equal(said, "ready");
  const pid = Number(fs.readFileSync(p.vmmPid, "utf8"));
  assert.ok(processRunning(pid));
  const c = await AgentClient.connect(p.agentSocket, 2000);
  try {
    assert.equal((await c.hello()).pid, agent.proc.pid, "agent.sock leads to the agent behind the VMM's vsock socket");
    assert.equal((await c.run({ argv: ["sh", "-c", "echo via-shim"] })).stdout.toString(), "via-shim\n");
  } finally {
    c.close();
  }
  const console = fs.readFileSync(p.console, "utf8");
  assert.match(console, /^Linux version 6\.1 \(stand-in\)\ncorral-init: agent on vsock port 1024\n/, "stdout is the console");
  assert.match(console, /\[firecracker\] stand-in vmm: started/, "stderr is kept too, marked with the VMM's name");

  process.kill(pid, "SIGKILL");
  const exit = await exitOf(p);
  assert.deepEqual([exit.requested, exit.signal], [false, "SIGKILL"]);
  for (const f of [p.agentSocket, p.vsockSocket, p.vmmPid, p.shimPid]) assert.equal(fs.existsSync(f), false, f);
});

test("a stop asked for ends the VMM (signals after the guest does not end itself) and is recorded as asked", async () => {
  const { said, p } = await startVm("stop");
  assert.equal(said, "ready");
  const pid = Number(fs.readFileSync(p.vmmPid, "utf8"));
  const shim = Number(fs.readFileSync(p.shimPid, "utf8").split(" ")[0]);
  // No guest to end itself here (and the host's agent must never be asked to reboot): its vsock goes away first.
  process.kill(pid, "SIGUSR1");
  process.kill(shim, "SIGTERM");
  const exit = await exitOf(p);
  assert.deepEqual([exit.requested, exit.signal], [true, "SIGTERM"]);
  assert.equal(processRunning(pid), false);
});

test("a VMM binary that cannot run ends the start with the reason in the console", async () => {
  const vm = path.join(dir, "nobin");
  fs.mkdirSync(vm);
  const p = shimPaths(vm);
  const cfg: ShimConfig = {
    vmm: "cloud-hypervisor",
    binary: path.join(dir, "no-such-vmm"),
    args: [],
    wiring: { kind: "hybrid-vsock", uds: p.vsockSocket, port: AGENT_VSOCK_PORT },
    guestStop: "poweroff",
    identity: vmIdentity("nobin"),
    bootTimeoutMs: 5000,
  };
  fs.writeFileSync(p.config, JSON.stringify(cfg));
  const c = new ShimLauncher(false).start(vm);
  const said = await new Promise<string>((resolve) => {
    let text = "";
    c.stdio[3]!.on("data", (d: Buffer) => (text += d.toString()));
    c.stdio[3]!.on("end", () => resolve(text.trim()));
  });
  assert.match(said, /^failed: the VM exited \(code 127\)/);
  assert.match(fs.readFileSync(p.console, "utf8"), /cannot run .*no-such-vmm: spawn .* ENOENT/);
});
