// corral-vm-shim: the one host process that owns a microVM (like
// containerd's shim owns a container), whichever VMM runs it. Started
// detached as `node shim.js --spare` by the backend ahead of need (Node
// takes ~100 ms to start here), it waits for a VM directory on stdin (and
// exits if stdin closes first: the process that made it is gone); given
// DIR, it:
//  - starts the VMM its driver rendered (DIR/vm.json: a VmmLaunch), wired
//    as the launch says: QEMU with the agent's virtio-serial port and the
//    serial console on socketpair ends only this process holds; Cloud
//    Hypervisor and Firecracker with the console on their stdout;
//  - serves DIR/agent.sock: QEMU's one agent stream multiplexed for every
//    host connection (mux.ts), or for CH and FC one hybrid vsock
//    connection per host connection (vsock-bridge.ts), so the VM looks
//    like a container to callers;
//  - keeps the console in DIR/console.log, bounded (console-log.ts);
//  - on SIGTERM has the guest sync and end itself, killing the VMM if it will not;
//  - when the VMM exits, writes DIR/exit.json (requested or a crash) and exits.
// It reports "ready" (or why not) on fd 3 once the agent answers.
import fs from "node:fs";
import fsp from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import type { Readable } from "node:stream";
import { AgentClient } from "../../agent/client.js";
import { procStat } from "../../host/process.js";
import { cgroupMode, ContainerCgroup, SPARE_PREFIX } from "../../host/cgroups.js";
import { ConsoleLog } from "./console-log.js";
import { AgentMux } from "./mux.js";
import { shimPaths, type ShimConfig, type ShimExit } from "./shim-files.js";
import { bridgeToVsock } from "./vsock-bridge.js";
import { startHelpers, type RunningHelpers } from "./shim-helpers.js";

const POWEROFF_WAIT_MS = 4000;

/** The VMM process, with its console streams and how agent.sock's clients reach the guest. */
interface Vmm {
  readonly child: ChildProcess;
  /** Settles if the VMM could not be started (listened to from the spawn on: the event comes before main is ready for it). */
  readonly failed: Promise<Error>;
  readonly console: Readable;
  readonly serve: (client: net.Socket) => void;
  readonly close: () => void;
}

/** Starts the VMM of `cfg`, wired as its launch says. */
function startVmm(cfg: ShimConfig): Vmm {
  const incoming = cfg.incoming === undefined ? undefined : fs.openSync(cfg.incoming.file, "r");
  const args = cfg.incoming === undefined ? cfg.args : [...cfg.args, ...cfg.incoming.args];
  try {
    const w = cfg.wiring;
    if (w.kind === "fds") {
      // fd 3 the agent's port, fd 4 the console (shim-files.ts AGENT_FD, CONSOLE_FD), fd 5 the saved state.
      const child = spawn(cfg.binary, args, { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe", ...(incoming === undefined ? [] : [incoming])] });
      const failed = new Promise<Error>((resolve) => child.once("error", resolve));
      const mux = new AgentMux(child.stdio[3] as net.Socket);
      return { child, failed, console: child.stdio[4] as net.Socket, serve: (s) => mux.attach(s), close: () => mux.close() };
    }
    fs.rmSync(w.uds, { force: true }); // the VMM will not bind over a socket an earlier run left
    // stdin a pipe kept open, never written: the VMM polls its serial input, which /dev/null is not.
    const child = spawn(cfg.binary, args, { stdio: ["pipe", "pipe", "pipe", ...(incoming === undefined ? [] : ["ignore", "ignore", incoming] as const)] });
    const failed = new Promise<Error>((resolve) => child.once("error", resolve));
    child.stdin!.on("error", () => {});
    return { child, failed, console: child.stdout!, serve: (s) => bridgeToVsock(s, w.uds, w.port), close: () => child.stdin!.destroy() };
  } finally {
    if (incoming !== undefined) fs.closeSync(incoming);
  }
}

async function main(dir: string): Promise<void> {
  const p = shimPaths(dir);
  const cfg = JSON.parse(await fsp.readFile(p.config, "utf8")) as ShimConfig;
  let report: fs.WriteStream | undefined;
  try {
    report = fs.createWriteStream("", { fd: 3 });
    report.on("error", () => {});
  } catch {
    report = undefined;
  }
  const say = (line: string) => {
    if (report && !report.destroyed) report.end(`${line}\n`);
    report = undefined;
  };

  if (cfg.cgroup) {
    const cg = new ContainerCgroup(cgroupMode(), cfg.cgroup);
    // A spare already in a cgroup of its own renames it to the VM's: no
    // process moves on this path (see spareCgroup).
    if (!(spare && (await spare.renameTo(cfg.cgroup)))) {
      await cg.enter(process.pid);
      if (spare) await spare.remove().catch(() => {});
    }
    spare = undefined;
    if (cfg.cpuShare !== undefined) await cg.limitCpu(cfg.cpuShare);
    if (cfg.memoryLimit !== undefined) await cg.limitMemory(cfg.memoryLimit);
  }
  // With its start time: the shim's command line does not name its VM
  // (it was started as a spare), and a pid alone may be recycled.
  await fsp.writeFile(p.shimPid, `${process.pid} ${procStat(process.pid)?.startTime ?? 0}`);
  await fsp.rm(p.exit, { force: true });
  const con = new ConsoleLog(p.console);
  // A share's virtiofsd listens before QEMU starts: QEMU connects to it as it starts.
  let helpers: RunningHelpers | undefined;
  if (cfg.helpers?.length) {
    try {
      helpers = await startHelpers(cfg.helpers, (c) => con.write(c));
    } catch (e) {
      con.close();
      say(`failed: ${(e as Error).message}`);
      await fsp.rm(p.shimPid, { force: true });
      process.exit(0);
    }
  }
  const vmm = startVmm(cfg);
  const vmmProc = vmm.child;
  await fsp.writeFile(p.vmmPid, String(vmmProc.pid ?? 0));

  vmm.console.on("data", (c: Buffer) => con.write(c));
  vmmProc.stderr!.on("data", (c: Buffer) => con.write(Buffer.from(`\n[${cfg.vmm}] ${c.toString()}`)));

  await fsp.rm(p.agentSocket, { force: true });
  const server = net.createServer(vmm.serve);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(p.agentSocket, () => resolve());
  });
  await fsp.chmod(p.agentSocket, 0o600);

  let requested = false;
  let exited = false;
  const finish = async (code: number | null, signal: string | null) => {
    exited = true;
    server.close();
    vmm.close();
    helpers?.stop();
    const exit: ShimExit = { requested, code, signal, at: new Date().toISOString() };
    await fsp.writeFile(p.exit, JSON.stringify(exit));
    await fsp.rm(p.agentSocket, { force: true });
    await fsp.rm(p.qmpSocket, { force: true });
    if (cfg.wiring.kind === "hybrid-vsock") await fsp.rm(cfg.wiring.uds, { force: true });
    await fsp.rm(p.vmmPid, { force: true });
    con.close();
    say(`failed: the VM exited (${signal ?? `code ${code}`}) before its agent answered`);
    await fsp.rm(p.shimPid, { force: true });
    process.exit(0);
  };
  vmmProc.on("exit", (code, signal) => void finish(code, signal));
  void vmm.failed.then((e) => {
    con.write(Buffer.from(`\n[shim] cannot run ${cfg.binary}: ${e.message}\n`));
    void finish(127, null);
  });

  const stop = async () => {
    if (requested) return;
    requested = true;
    await endGuest(p.agentSocket, cfg.guestStop).catch(() => {});
    const t1 = setTimeout(() => vmmProc.kill("SIGTERM"), POWEROFF_WAIT_MS);
    const t2 = setTimeout(() => vmmProc.kill("SIGKILL"), POWEROFF_WAIT_MS + 2000);
    t1.unref();
    t2.unref();
  };
  process.on("SIGTERM", () => void stop());
  process.on("SIGINT", () => void stop());
  process.on("SIGHUP", () => {});

  // Ready once the agent answers through agent.sock (the boot takes seconds under TCG).
  const deadline = Date.now() + cfg.bootTimeoutMs;
  while (!exited && !requested) {
    try {
      const c = await AgentClient.connect(p.agentSocket, 1000);
      try {
        await withTimeout(c.hello(), Math.max(1, deadline - Date.now()));
      } finally {
        c.close();
      }
      say("ready");
      return;
    } catch {
      if (Date.now() > deadline) {
        say(`failed: the agent did not answer within ${cfg.bootTimeoutMs} ms`);
        void stop();
        return;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

/** Asks the guest to sync and end itself with `applet` (the agent is PID 1 there; busybox sits beside it). */
async function endGuest(agentSocket: string, applet: ShimConfig["guestStop"]): Promise<void> {
  const c = await AgentClient.connect(agentSocket, 500);
  try {
    await withTimeout(c.run({ argv: ["/run/corral/busybox", "sh", "-c", `sync; /run/corral/busybox ${applet} -f`], keepAlive: true }), 1500).catch(() => {});
  } finally {
    c.close();
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("timed out")), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/**
 * A spare started with `--cgroup-parent P` (v1 hierarchies) moves itself
 * into P/spare-<pid> while it waits: moving a process into a v1 cgroup
 * costs the writer an RCU grace period, 7-20 ms here, and a spare pays it
 * off the VM's path; given its VM, it renames that cgroup to the VM's
 * (ContainerCgroup.renameTo). A spare let go leaves and removes it (its
 * starter does so too as it closes: ShimLauncher.close); one killed
 * outright leaves it empty, for reconcile (removeSpareCgroups).
 */
let spare: ContainerCgroup | undefined;

async function spareCgroup(): Promise<void> {
  const i = process.argv.indexOf("--cgroup-parent");
  const parent = i > 0 ? process.argv[i + 1] : undefined;
  const mode = cgroupMode();
  if (!parent || mode === "v2") return;
  // Set before it is entered: a spare let go meanwhile still cleans it up.
  spare = new ContainerCgroup(mode, `${parent}/${SPARE_PREFIX}${process.pid}`);
  try {
    await spare.enter(process.pid);
  } catch {
    spare.leaveSync(process.pid);
    spare = undefined;
  }
}

/** Ends an unassigned spare: out of its cgroup first. */
function exitSpare(): never {
  spare?.leaveSync(process.pid);
  process.exit(0);
}

/** The first line on stdin: the VM directory. Stdin closing before it (the backend's process died) ends this spare. */
function assignedDir(): Promise<string> {
  return new Promise((resolve) => {
    let text = "";
    process.stdin.on("data", (c: Buffer) => {
      text += c.toString();
      const nl = text.indexOf("\n");
      if (nl < 0) return;
      // From now on this shim outlives whoever started it: stdin is done with.
      process.stdin.destroy();
      resolve(text.slice(0, nl));
    });
    process.stdin.on("end", () => exitSpare());
    process.stdin.on("error", () => exitSpare());
  });
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  const entered = spareCgroup();
  void Promise.all([assignedDir(), entered]).then(([dir]) =>
    main(dir).catch((e: Error) => {
      // stdout and stderr lead nowhere (the shim was started before its VM had a directory).
      try {
        fs.appendFileSync(shimPaths(dir).log, `corral-vm-shim: ${e.stack ?? e.message}\n`);
      } finally {
        process.exit(1);
      }
    }),
  );
}
