import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { BackendError } from "../core/errors.js";
import { runCommand } from "../host/command.js";
import { nativeBinary } from "../host/native.js";
import { procStat } from "../host/process.js";
import type { NetAttachment } from "./networks.js";

/**
 * Puts a running container on its network: a veth pair, its port on the
 * bridge and its eth0 made right inside the network namespace of the
 * container's init (the container's own, which crun made in the
 * container's user namespace, so the container mounts a sysfs of its own:
 * with a namespace corral made beforehand, owned by the host's user
 * namespace, crun binds the host's whole /sys instead, every host link in
 * view), with its address and default route, the loopback up:
 * corral-netjoin (native/netjoin.c). The pair goes with the namespace when
 * the container's processes end; a start again makes it anew.
 *
 * A one-shot process spawns corral-netjoin for it; a long-lived one keeps
 * a NetJoiner (`corral-netjoin --serve`), which forks itself per join: a
 * spawn from a large node process costs ~7 ms here, a line over a pipe and
 * a fork of a small static process well under one.
 */
export async function joinNamespace(att: NetAttachment, init: { pid: number; startTime?: number | undefined }, joiner?: NetJoiner): Promise<void> {
  const c = att.container;
  if (!c) return;
  const startTime = init.startTime ?? procStat(init.pid)?.startTime;
  if (!startTime) throw new BackendError(`the container's init ${init.pid} is gone`);
  const args = [String(init.pid), String(startTime), c.port, c.bridge, att.mac, `${att.address}/${att.prefix}`, att.gateway];
  if (joiner) await joiner.join(args);
  else await runCommand(nativeBinary("corral-netjoin"), args);
}

/** A `corral-netjoin --serve` kept for this process: requests in order, one line each way. */
export class NetJoiner {
  private proc: ChildProcessWithoutNullStreams | undefined;
  private readonly waiting: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private buffered = "";

  join(args: readonly string[]): Promise<void> {
    const p = this.started();
    // Held while a join waits for its answer, so the awaiting caller's
    // process does not end under it (idle, the server holds nothing: a
    // library user's script exited mid-create when its only pending work
    // was this answer); let go again once none waits.
    (p.stdout as unknown as { ref?: () => void }).ref?.();
    const settle = () => {
      if (!this.waiting.length) (p.stdout as unknown as { unref?: () => void }).unref?.();
    };
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      p.stdin.write(`${args.join(" ")}\n`);
    }).finally(settle);
  }

  /** Ends the server (its stdin closes); joins still waiting fail. */
  close(): void {
    this.proc?.stdin.end();
    this.proc = undefined;
  }

  private started(): ChildProcessWithoutNullStreams {
    if (this.proc) return this.proc;
    const p = spawn(nativeBinary("corral-netjoin"), ["--serve"], { stdio: ["pipe", "pipe", "pipe"] });
    this.proc = p;
    p.stdout.on("data", (d: Buffer) => {
      this.buffered += d.toString();
      for (let i = this.buffered.indexOf("\n"); i >= 0; i = this.buffered.indexOf("\n")) {
        const line = this.buffered.slice(0, i);
        this.buffered = this.buffered.slice(i + 1);
        const w = this.waiting.shift();
        if (line === "ok") w?.resolve();
        else w?.reject(new BackendError(`corral-netjoin: ${line.replace(/^error /, "")}`));
      }
    });
    p.stderr.resume();
    const gone = () => {
      if (this.proc === p) this.proc = undefined;
      for (const w of this.waiting.splice(0)) w.reject(new BackendError("corral-netjoin ended"));
    };
    p.on("exit", gone);
    p.on("error", gone);
    p.stdin.on("error", () => {});
    // It holds nothing of its starter's: the starter may exit while it waits (its stdin then closes).
    p.unref();
    for (const s of [p.stdin, p.stdout, p.stderr] as unknown as { unref?: () => void }[]) s.unref?.();
    return p;
  }
}
