import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { runCommand } from "../../src/host/command.js";

/**
 * An "upstream" network namespace that stands for the internet in network
 * tests: a veth pair to the host, addresses in 198.18.0.0/15 (benchmark
 * range: nothing real answers there; this machine's own interface is in
 * 192.0.2.0/24), an HTTP server on every address and a DNS server with a
 * zone of its names (upstream-server.ts). No default route: it answers
 * only what reaches it, and reaches nothing else.
 */
export interface Upstream {
  /** 198.18.N.0/24: the test's own hosts. */
  readonly prefix: string;
  /** The DNS server (ADDR:53), to give the resolver as its upstream. */
  readonly dns: string;
  /** name → address of the zone; every address also serves HTTP. */
  readonly hosts: Readonly<Record<string, string>>;
  /** The address of the host's end (what masqueraded sandboxes appear as). */
  readonly hostSide: string;
  close(): Promise<void>;
}

export async function startUpstream(): Promise<Upstream> {
  const n = randomBytes(1)[0]!;
  const tag = randomBytes(3).toString("hex");
  const ns = `corral-test-up-${tag}`;
  const link = `ctup${tag}`;
  const net = `198.18.${n}`;
  const hosts = { "www.upstream.test": `${net}.2`, "svc.upstream.test": `${net}.10`, "other.upstream.test": `${net}.11` };
  await runCommand("ip", ["netns", "add", ns]);
  let server: ChildProcess | undefined;
  const close = async () => {
    if (server?.pid) server.kill("SIGKILL");
    await runCommand("ip", ["link", "delete", link], { allowFailure: true });
    await runCommand("ip", ["netns", "delete", ns], { allowFailure: true });
  };
  try {
    await runCommand("ip", ["-batch", "-"], {
      input: [`link add ${link} type veth peer name eth0 netns ${ns}`, `addr add ${net}.1/24 dev ${link}`, `link set ${link} up`].join("\n") + "\n",
    });
    await runCommand("ip", ["-n", ns, "-batch", "-"], {
      input: ["link set lo up", "link set eth0 up", ...Object.values(hosts).map((a) => `addr add ${a}/24 dev eth0`)].join("\n") + "\n",
    });
    const main = path.join(path.dirname(fileURLToPath(import.meta.url)), "upstream-server.js");
    const s = spawn("ip", ["netns", "exec", ns, process.execPath, main, hosts["www.upstream.test"], ...Object.entries(hosts).map(([k, v]) => `${k}=${v}`)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    server = s;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("upstream servers did not start")), 15_000);
      s.stdout!.on("data", (d: Buffer) => d.toString().includes("ready") && (clearTimeout(timer), resolve()));
      s.on("exit", (code) => reject(new Error(`upstream servers exited (${code})`)));
    });
  } catch (e) {
    await close();
    throw e;
  }
  return { prefix: `${net}.0/24`, dns: `${hosts["www.upstream.test"]}:53`, hosts, hostSide: `${net}.1`, close };
}
