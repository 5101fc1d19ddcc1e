// corral-vm-shim: the one host process that owns a microVM (like
// containerd's shim owns a container). Started detached as
// `node shim.js --spare` by the backend ahead of need (Node takes ~100 ms
// to start here), it waits for a VM directory on stdin (and exits if stdin
// closes first: the process that made it is gone); given DIR, it:
//  - starts QEMU (DIR/vm.json) with the agent's virtio-serial port and the
//    serial console on socketpair ends only this process holds;
//  - serves DIR/agent.sock, multiplexing every host connection onto the one
//    agent stream (mux.ts), so the VM looks like a container to callers;
//  - keeps the console in DIR/console.log, bounded;
//  - on SIGTERM powers the guest off (sync first), killing QEMU if it will not;
//  - when QEMU exits, writes DIR/exit.json (requested or a crash) and exits.
// It reports "ready" (or why not) on fd 3 once the agent answers.
import fs from "node:fs";
import fsp from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { spawn } from "node:child_process";
import { AgentClient } from "../../agent/client.js";
import { procStat } from "../../host/process.js";
import { cgroupMode, ContainerCgroup, SPARE_PREFIX } from "../../host/cgroups.js";
import { AgentMux } from "./mux.js";

export interface ShimConfig {
  readonly qemu: string;
  readonly args: readonly string[];
  readonly bootTimeoutMs: number;
  /** The VM's cgroup (relative), entered before QEMU starts so it holds all of it. */
  readonly cgroup?: string;
  /** CPU time QEMU may use, in cores, when the spec's vcpus is a fraction (the vCPU count is its ceiling). */
  readonly cpuShare?: number;
  /**
   * A saved VM's state (QEMU's migration stream in a file) to start from:
   * opened here and read by QEMU as `-incoming fd:5`, straight from the
   * file (no `cat` process and pipe between them).
   */
  readonly incoming?: string;
}

export interface ShimExit {
  /** A stop or destroy asked for it; otherwise the guest or QEMU died on its own. */
  readonly requested: boolean;
  readonly code: number | null;
  readonly signal: string | null;
  readonly at: string;
}

export const shimPaths = (dir: string) => ({
  config: path.join(dir, "vm.json"),
  agentSocket: path.join(dir, "agent.sock"),
  qmpSocket: path.join(dir, "qmp.sock"),
  console: path.join(dir, "console.log"),
  exit: path.join(dir, "exit.json"),
  log: path.join(dir, "shim.log"),
  shimPid: path.join(dir, "shim.pid"),
  qemuPid: path.join(dir, "qemu.pid"),
});

const CONSOLE_MAX = 256 * 1024;
/** QEMU's fds: 3 the agent's port, 4 the console, 5 the saved state to restore. */
const INCOMING_FD = 5;
const POWEROFF_WAIT_MS = 4000;

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
  }
  // With its start time: the shim's command line does not name its VM
  // (it was started as a spare), and a pid alone may be recycled.
  await fsp.writeFile(p.shimPid, `${process.pid} ${procStat(process.pid)?.startTime ?? 0}`);
  await fsp.rm(p.exit, { force: true });
  const incoming = cfg.incoming === undefined ? undefined : fs.openSync(cfg.incoming, "r");
  const args = incoming === undefined ? cfg.args : [...cfg.args, "-incoming", `fd:${INCOMING_FD}`];
  const qemu = spawn(cfg.qemu, args, { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe", ...(incoming === undefined ? [] : [incoming])] });
  if (incoming !== undefined) fs.closeSync(incoming);
  const agentStream = qemu.stdio[3] as net.Socket;
  const consoleStream = qemu.stdio[4] as net.Socket;
  await fsp.writeFile(p.qemuPid, String(qemu.pid ?? 0));

  const con = new ConsoleLog(p.console);
  consoleStream.on("data", (c: Buffer) => con.write(c));
  qemu.stderr!.on("data", (c: Buffer) => con.write(Buffer.from(`\n[qemu] ${c.toString()}`)));

  const mux = new AgentMux(agentStream);
  await fsp.rm(p.agentSocket, { force: true });
  const server = net.createServer((s) => mux.attach(s));
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
    mux.close();
    const exit: ShimExit = { requested, code, signal, at: new Date().toISOString() };
    await fsp.writeFile(p.exit, JSON.stringify(exit));
    await fsp.rm(p.agentSocket, { force: true });
    await fsp.rm(p.qmpSocket, { force: true });
    await fsp.rm(p.qemuPid, { force: true });
    con.close();
    say(`failed: the VM exited (${signal ?? `code ${code}`}) before its agent answered`);
    await fsp.rm(p.shimPid, { force: true });
    process.exit(0);
  };
  qemu.on("exit", (code, signal) => void finish(code, signal));
  qemu.on("error", (e) => {
    con.write(Buffer.from(`\n[shim] cannot run ${cfg.qemu}: ${e.message}\n`));
    void finish(127, null);
  });

  const stop = async () => {
    if (requested) return;
    requested = true;
    await powerOff(p.agentSocket).catch(() => {});
    const t1 = setTimeout(() => qemu.kill("SIGTERM"), POWEROFF_WAIT_MS);
    const t2 = setTimeout(() => qemu.kill("SIGKILL"), POWEROFF_WAIT_MS + 2000);
    t1.unref();
    t2.unref();
  };
  process.on("SIGTERM", () => void stop());
  process.on("SIGINT", () => void stop());
  process.on("SIGHUP", () => {});

  // Ready once the agent answers through the mux (the boot takes seconds under TCG).
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

/** Asks the guest to sync and power off (the agent is PID 1 there; busybox sits beside it). */
async function powerOff(agentSocket: string): Promise<void> {
  const c = await AgentClient.connect(agentSocket, 500);
  try {
    await withTimeout(c.run({ argv: ["/run/corral/busybox", "sh", "-c", "sync; /run/corral/busybox poweroff -f"], keepAlive: true }), 1500).catch(() => {});
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

/** The console, kept to the last CONSOLE_MAX..2*CONSOLE_MAX bytes (console.log + console.log.1). */
class ConsoleLog {
  private fd: number;
  private size = 0;
  constructor(private readonly file: string) {
    this.fd = fs.openSync(file, "w", 0o600);
  }
  write(b: Buffer): void {
    if (this.size + b.length > CONSOLE_MAX) {
      fs.closeSync(this.fd);
      fs.renameSync(this.file, `${this.file}.1`);
      this.fd = fs.openSync(this.file, "w", 0o600);
      this.size = 0;
    }
    fs.writeSync(this.fd, b);
    this.size += b.length;
  }
  close(): void {
    fs.closeSync(this.fd);
  }
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
