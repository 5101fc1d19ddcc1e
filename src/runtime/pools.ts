import { createHash } from "node:crypto";
import { InvalidArgumentError, NotFoundError } from "../core/errors.js";
import { networkMode } from "../core/network-spec.js";
import { parseSpec, type ResolvedSpec } from "../core/sandbox-spec.js";
import { stmt, type Db } from "./db.js";
import type { SandboxRows } from "./sandbox-rows.js";

/** The reserved tenant owning sandboxes that wait in a pool (not a valid tenant name). */
export const POOL_TENANT = "_pool";

export interface PoolConfig {
  readonly key: string;
  readonly template: string;
  readonly backend: ResolvedSpec["backend"];
  readonly resources: ResolvedSpec["resources"];
  /** "nat": its sandboxes wait on the network; a claim gives them the claimant's policy. */
  readonly network: "none" | "nat";
  /** How many sandboxes to keep ready. */
  readonly target: number;
}

export interface PoolStats extends PoolConfig {
  readonly ready: number;
  readonly hits: number;
  readonly misses: number;
  /** Claim latency (ms) over the last claims, or null before the first. */
  readonly claimP50Ms: number | null;
  readonly claimP99Ms: number | null;
}

/**
 * What a pooled sandbox must share with a request to stand in for it: all
 * that is fixed when a sandbox starts (template, backend, limits, network
 * mode: a "nat" sandbox's egress policy and named networks are applied
 * when it is claimed, so "none" keys are those made before networks).
 * Env, workdir, labels, name and timeout are applied at claim time.
 */
export function poolKey(spec: Pick<ResolvedSpec, "template" | "backend" | "resources" | "network" | "vmm">): string {
  const r = spec.resources;
  // A VM's hypervisor is part of its shape; QEMU's (the default, and the
  // only one pools fill with) is left out so keys made before vmm existed hold.
  const vmm = spec.vmm !== undefined && spec.vmm !== "qemu" ? [spec.vmm] : [];
  const shape = JSON.stringify([spec.template, spec.backend, networkMode(spec.network), r.vcpus, r.memory, r.pids, r.disk, ...vmm]);
  return createHash("sha256").update(shape).digest("hex").slice(0, 16);
}

/** Pool configuration and claim statistics (the statistics live in this process). */
export class Pools {
  private readonly stats = new Map<string, { hits: number; misses: number; claims: number[] }>();

  constructor(
    private readonly db: Db,
    private readonly rows: Pick<SandboxRows, "waitingIn">,
  ) {}

  /** Sets the target of the pool for a template and resource shape (0 empties it). */
  set(template: string, resources: unknown, target: number, backend: unknown = "container", network: unknown = "none"): PoolConfig {
    if (!Number.isInteger(target) || target < 0 || target > 10_000) throw new InvalidArgumentError("a pool's size is a whole number from 0 to 10000");
    const spec = parseSpec({ template, resources, backend, network });
    const mode = networkMode(spec.network);
    const key = poolKey(spec);
    stmt(
      this.db,
      "INSERT INTO pools (key, template, resources, target, created_at, backend, network) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET target = excluded.target",
    ).run(key, template, JSON.stringify(spec.resources), target, new Date().toISOString(), spec.backend, mode);
    return { key, template, backend: spec.backend, resources: spec.resources, network: mode, target };
  }

  remove(key: string): void {
    if (stmt(this.db, "UPDATE pools SET target = 0 WHERE key = ?").run(key).changes === 0) throw new NotFoundError("pool", key);
  }

  configs(): PoolConfig[] {
    const rows = stmt(this.db, "SELECT * FROM pools ORDER BY template, key").all() as {
      key: string;
      template: string;
      backend: PoolConfig["backend"];
      resources: string;
      network: "none" | "nat";
      target: number;
    }[];
    return rows.map((r) => ({ key: r.key, template: r.template, backend: r.backend, resources: JSON.parse(r.resources) as PoolConfig["resources"], network: r.network, target: r.target }));
  }

  /** Sandboxes waiting (or being started) in a pool. */
  waiting(key: string): { id: string; state: string }[] {
    return this.rows.waitingIn(key);
  }

  list(): PoolStats[] {
    return this.configs().map((c) => {
      const st = this.stats.get(c.key);
      const sorted = [...(st?.claims ?? [])].sort((a, b) => a - b);
      const at = (p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : null);
      const ready = this.waiting(c.key).filter((w) => w.state === "running").length;
      return { ...c, ready, hits: st?.hits ?? 0, misses: st?.misses ?? 0, claimP50Ms: at(50), claimP99Ms: at(99) };
    });
  }

  /** Whether a pool is configured for this shape (a create without one is not a miss). */
  has(key: string): boolean {
    return stmt(this.db, "SELECT 1 FROM pools WHERE key = ? AND target > 0").get(key) !== undefined;
  }

  record(key: string, hit: boolean, ms?: number): void {
    let st = this.stats.get(key);
    if (!st) this.stats.set(key, (st = { hits: 0, misses: 0, claims: [] }));
    if (hit) {
      st.hits++;
      if (ms !== undefined) {
        st.claims.push(ms);
        if (st.claims.length > 1000) st.claims.shift();
      }
    } else st.misses++;
  }
}
