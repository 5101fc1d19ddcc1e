import type { Command } from "commander";
import { InvalidArgumentError } from "../core/index.js";
import { keyValues } from "./format.js";
import type { SpecInput } from "./target.js";

export const collect = (v: string, prev: string[]) => [...prev, v];

/** The flags of `run` and `create` that describe the sandbox. */
export function specOptions(cmd: Command): Command {
  return cmd
    .option("--name <name>", "sandbox name (default: generated)")
    .option("-t, --template <name>", "template to start from", "debian")
    .option("--backend <kind>", "container or vm", "container")
    .option("-m, --memory <size>", "memory limit, e.g. 512M")
    .option("--cpus <n>", "CPU limit in cores, e.g. 0.5")
    .option("--pids <n>", "maximum number of processes")
    .option("--disk <size>", "size of the writable layer, e.g. 1G")
    .option("-e, --env <KEY=VALUE>", "environment variable (repeatable)", collect, [])
    .option("-w, --workdir <dir>", "working directory")
    .option("-l, --label <KEY=VALUE>", "label (repeatable)", collect, [])
    .option("--persistent", "keep the sandbox (and its disk) until removed")
    .option("--timeout <seconds>", "remove the sandbox after this many seconds");
}

export interface SpecFlags {
  name?: string;
  template: string;
  backend: string;
  memory?: string;
  cpus?: string;
  pids?: string;
  disk?: string;
  env: string[];
  workdir?: string;
  label: string[];
  persistent?: boolean;
  timeout?: string;
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
  if (f.timeout !== undefined) {
    lifetime.timeoutSeconds = Number(f.timeout);
    if (!(lifetime.timeoutSeconds > 0)) throw new InvalidArgumentError(`--timeout must be a number of seconds, got "${f.timeout}"`);
  }
  const spec: SpecInput = {
    template: f.template,
    backend: f.backend,
    resources,
    env: keyValues(f.env, "--env"),
    labels: keyValues(f.label, "--label"),
    lifetime,
  };
  if (f.name !== undefined) spec.name = f.name;
  if (f.workdir !== undefined) spec.workdir = f.workdir;
  return spec;
}
