import { spawn } from "node:child_process";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { HostError } from "../core/errors.js";
import { killQuietly, processRunning, procStat } from "../host/process.js";

/** How long a resolver has to listen after it is started. */
const START_TIMEOUT_MS = 10_000;

/**
 * The resolver process of a state dir (resolver/resolver-main.ts): started
 * detached, in a session of its own, so it serves the sandboxes as long as
 * they run, whoever started it; known by its pid and start time in
 * `<net>/resolver.json`, so a recycled pid is never signalled.
 */
export class ResolverProcess {
  private readonly pidFile: string;
  private readonly configFile: string;
  private readonly logFile: string;

  constructor(
    private readonly netDir: string,
    private readonly stateDir: string,
  ) {
    this.pidFile = path.join(netDir, "resolver.json");
    this.configFile = path.join(netDir, "resolver-config.json");
    this.logFile = path.join(netDir, "resolver.log");
  }

  private running(): { pid: number; startTime: number } | undefined {
    try {
      const r = JSON.parse(fs.readFileSync(this.pidFile, "utf8")) as { pid: number; startTime: number };
      const now = procStat(r.pid);
      return now && now.startTime === r.startTime && now.state !== "Z" ? r : undefined;
    } catch {
      return undefined;
    }
  }

  /** Starts it again if it died (the config of the last start stays). */
  async ensure(): Promise<void> {
    if (this.running() || !fs.existsSync(this.configFile)) return;
    await this.launch();
  }

  async start(config: { stateDir: string; listen: string; upstream: string[] }): Promise<void> {
    await this.stop();
    await fsp.writeFile(this.configFile, JSON.stringify(config), { mode: 0o600 });
    await this.launch();
  }

  private async launch(): Promise<void> {
    const main = path.join(path.dirname(fileURLToPath(import.meta.url)), "resolver", "resolver-main.js");
    const log = fs.openSync(this.logFile, "a", 0o600);
    const child = spawn(process.execPath, [main, this.netDir], { detached: true, stdio: ["ignore", "pipe", log] });
    fs.closeSync(log);
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("did not start in time")), START_TIMEOUT_MS);
        let out = "";
        child.stdout!.on("data", (d: Buffer) => {
          out += d.toString();
          if (out.includes("ready\n")) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.on("exit", (code) => {
          clearTimeout(timer);
          reject(new Error(`exited (${code}): ${fs.readFileSync(this.logFile, "utf8").trim().split("\n").slice(-2).join(" ")}`));
        });
      });
    } catch (e) {
      if (child.pid) killQuietly(child.pid);
      throw new HostError(`corral's resolver for ${this.stateDir} failed to start: ${(e as Error).message}`);
    }
    child.stdout!.destroy();
    child.removeAllListeners("exit");
    child.unref();
    const st = procStat(child.pid!);
    await fsp.writeFile(this.pidFile, JSON.stringify({ pid: child.pid, startTime: st?.startTime ?? 0 }));
  }

  /**
   * Ends it (SIGTERM, then SIGKILL after a second) and forgets its files.
   * Also one whose starter was killed before it recorded the pid: found
   * by its exact command line (this state dir's net directory).
   */
  async stop(): Promise<void> {
    const pids = new Set(await this.instances());
    const r = this.running();
    if (r) pids.add(r.pid);
    for (const pid of pids) killQuietly(pid, "SIGTERM");
    const alive = () => [...pids].some((p) => processRunning(p));
    for (let i = 0; i < 100 && alive(); i++) await new Promise((res) => setTimeout(res, 10));
    for (const pid of pids) if (processRunning(pid)) killQuietly(pid, "SIGKILL");
    await fsp.rm(this.pidFile, { force: true });
    await fsp.rm(this.configFile, { force: true });
  }

  /** Processes running resolver-main.js for this net directory. */
  private async instances(): Promise<number[]> {
    const out: number[] = [];
    for (const entry of await fsp.readdir("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      const argv = (await fsp.readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "")).split("\0");
      if (argv[1]?.endsWith(path.join("resolver", "resolver-main.js")) && argv[2] === this.netDir) out.push(Number(entry));
    }
    return out;
  }
}
