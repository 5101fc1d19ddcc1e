import { DEFAULT_TEMPLATE } from "../../sdk/src/defaults.js";
import { InvalidArgumentError } from "../core/errors.js";
import type { OptionSpec } from "./args.js";
import { keyValues } from "./format.js";
import type { SpecInput } from "./target.js";

/**
 * The most a sandbox's lifetime.timeoutSeconds may be: 30 days, as the
 * spec's schema says (src/core/sandbox-spec.ts, api/openapi.yaml; a test
 * holds them equal). A copy, because the schema's module loads zod, which
 * the daemon's path of the CLI does not.
 */
export const MAX_LIFETIME_SECONDS = 30 * 24 * 3600;

const RESOURCE_OPTIONS: readonly OptionSpec[] = [
  { flags: "-m, --memory <size>", help: "memory limit, e.g. 512M" },
  { flags: "--cpus <n>", help: "CPU limit in cores, e.g. 0.5" },
  { flags: "--pids <n>", help: "maximum number of processes" },
  { flags: "--disk <size>", help: "size of the writable layer, e.g. 1G" },
];

/** The flags that describe a sandbox's network (run, create, net set). */
export const NETWORK_OPTIONS: readonly OptionSpec[] = [
  { flags: "--network <mode>", help: "none (loopback only, the default) or nat (outbound access under the egress policy)" },
  { flags: "--allow <rule>", help: "egress allowed only to these: CIDR, hostname or *.domain (implies nat)", repeat: true },
  { flags: "--deny <rule>", help: "egress denied to these: CIDR, hostname or *.domain (implies nat)", repeat: true },
  { flags: "--join <network>", help: "a named network of the tenant's sandboxes to join (implies nat)", repeat: true },
];

export interface NetworkFlags {
  network?: string;
  allow?: string[];
  deny?: string[];
  join?: string[];
}

/** --network, --allow, --deny, --join → the spec's network (as given; the schema checks it), or undefined. */
export function networkFrom(f: NetworkFlags): SpecInput["network"] {
  const allow = f.allow ?? [];
  const deny = f.deny ?? [];
  const join = f.join ?? [];
  if (!allow.length && !deny.length && !join.length) return f.network;
  return { mode: f.network ?? "nat", egress: { ...(allow.length ? { allow } : {}), deny }, networks: join };
}

/** The flags of `run` and `create` that describe the sandbox. */
export const SPEC_OPTIONS: readonly OptionSpec[] = [
  { flags: "--name <name>", help: "sandbox name (default: generated)" },
  { flags: "-t, --template <name>", help: "template to start from (corral template ls)", default: DEFAULT_TEMPLATE },
  { flags: "--backend <kind>", help: "container, gvisor (a container on gVisor's kernel) or vm", default: "container" },
  { flags: "--mac <mac>", help: "a VM's fixed MAC (default: derived from its name)" },
  { flags: "--cid <n>", help: "a VM's fixed vsock CID (default: derived from its name)" },
  ...RESOURCE_OPTIONS,
  { flags: "-e, --env <KEY=VALUE>", help: "environment variable", repeat: true },
  { flags: "-w, --workdir <dir>", help: "working directory" },
  { flags: "-l, --label <KEY=VALUE>", help: "label", repeat: true },
  { flags: "--persistent", help: "keep the sandbox (and its disk) until removed" },
  ...NETWORK_OPTIONS,
  { flags: "--timeout <seconds>", help: `remove the sandbox after this long: whole seconds from 1 to ${MAX_LIFETIME_SECONDS} (30 days), or with a unit (90s, 10m, 2h, 7d)` },
  { flags: "--share <src:target[:ro]>", help: "a host directory the sandbox sees at target (read-only with :ro); it must be below one the operator allows (corral daemon --allow-share)", repeat: true },
  { flags: "--share-host-store", help: "the host's /nix/store, read-only, at /nix/store (a share: the operator must allow /nix/store)" },
  { flags: "--nix-writable", help: "a private writable layer over the sandbox's /nix/store, with Nix's database, so nix-build works inside (a Nix template or --share-host-store)" },
];

/** The resource flags of `admin pool set`. */
export const POOL_RESOURCE_OPTIONS = RESOURCE_OPTIONS;

export interface SpecFlags {
  name?: string;
  template: string;
  backend: string;
  mac?: string;
  cid?: string;
  memory?: string;
  cpus?: string;
  pids?: string;
  disk?: string;
  env: string[];
  workdir?: string;
  label: string[];
  persistent?: boolean;
  timeout?: string;
  share?: string[];
  shareHostStore?: boolean;
  nixWritable?: boolean;
  network?: string;
  allow?: string[];
  deny?: string[];
  join?: string[];
}

export type ResourceFlags = Pick<SpecFlags, "memory" | "cpus" | "pids" | "disk">;

/** --memory, --cpus, --pids, --disk → the spec's resources (as given; the schema checks them). */
export function resourcesFrom(f: ResourceFlags): SpecInput["resources"] {
  const resources: SpecInput["resources"] = {};
  if (f.memory !== undefined) resources.memory = f.memory;
  if (f.disk !== undefined) resources.disk = f.disk;
  if (f.cpus !== undefined) resources.vcpus = Number(f.cpus);
  if (f.pids !== undefined) resources.pids = Number(f.pids);
  return resources;
}

/** CLI flags → SandboxSpec input; validation (with field paths) is the library's or the daemon's. */
export function specFrom(f: SpecFlags): SpecInput {
  const resources = resourcesFrom(f);
  const lifetime: SpecInput["lifetime"] = { mode: f.persistent ? "persistent" : "ephemeral" };
  if (f.timeout !== undefined) lifetime.timeoutSeconds = lifetimeSeconds(f.timeout);
  const spec: SpecInput = {
    template: f.template,
    backend: f.backend,
    resources,
    env: keyValues(f.env, "--env"),
    labels: keyValues(f.label, "--label"),
    lifetime,
  };
  if (f.name !== undefined) spec.name = f.name;
  if (f.mac !== undefined || f.cid !== undefined) {
    spec.identity = { ...(f.mac !== undefined ? { mac: f.mac } : {}), ...(f.cid !== undefined ? { cid: Number(f.cid) } : {}) };
  }
  const network = networkFrom(f);
  if (network !== undefined) spec.network = network;
  if (f.workdir !== undefined) spec.workdir = f.workdir;
  const shares = [...(f.shareHostStore ? [{ source: "/nix/store", target: "/nix/store", readOnly: true }] : []), ...(f.share ?? []).map(shareFrom)];
  if (shares.length) spec.shares = shares;
  if (f.nixWritable) spec.nix = { writable: true };
  return spec;
}

/** `--share SRC:TARGET[:ro|:rw]` → a share (paths as given; the spec and the daemon check them). */
export function shareFrom(text: string): { source: string; target: string; readOnly: boolean } {
  const mode = /:(ro|rw)$/.exec(text)?.[1];
  const rest = mode ? text.slice(0, -3) : text;
  const i = rest.lastIndexOf(":");
  if (i <= 0 || i === rest.length - 1) throw new InvalidArgumentError(`--share must be SOURCE:TARGET or SOURCE:TARGET:ro, got "${text}"`);
  return { source: rest.slice(0, i), target: rest.slice(i + 1), readOnly: mode === "ro" };
}

const UNITS: Readonly<Record<string, number>> = { "": 1, s: 1, m: 60, h: 3600, d: 86400 };

/** "90", "90s", "10m", "1.5h", "7d" → seconds; undefined when it is not a duration. */
export function parseDuration(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([smhd]?)\s*$/.exec(text);
  if (!m) return undefined;
  return Number(m[1]) * UNITS[m[2]!]!;
}

/** `run`/`create --timeout`: whole seconds in the spec's range. */
export function lifetimeSeconds(text: string): number {
  const s = parseDuration(text);
  if (s === undefined || !Number.isInteger(s) || s < 1 || s > MAX_LIFETIME_SECONDS) {
    throw new InvalidArgumentError(
      `--timeout must be whole seconds from 1 to ${MAX_LIFETIME_SECONDS} (30 days), or with a unit (90s, 10m, 2h, 7d), got "${text}"${s === 0 ? "; for no timeout use --persistent" : ""}`,
    );
  }
  return s;
}

/** `exec --timeout`: any positive duration (the agent rounds milliseconds up). */
export function commandTimeoutSeconds(text: string): number {
  const s = parseDuration(text);
  if (s === undefined || !(s > 0)) {
    throw new InvalidArgumentError(`--timeout must be a positive number of seconds (30, 0.5) or a duration (10m, 2h), got "${text}"; leave it out for no timeout`);
  }
  return s;
}
