import { z } from "zod";
import { InvalidSpecError, type SpecIssue } from "./errors.js";
import { parseSize } from "./size.js";
import { NixSpecSchema, SharesSchema, type NixSpec, type ShareSpec } from "./share-spec.js";
import { NetworkSchema, type ResolvedNetworkField } from "./network-spec.js";

/** DNS-label-like: safe as a path component, a hostname and a cgroup name. */
export const NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const TEMPLATE_PATTERN = /^[a-z0-9][a-z0-9._-]{0,127}$/;
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LABEL_KEY = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,126}[A-Za-z0-9])?$/;

export const DEFAULT_EPHEMERAL_TIMEOUT_S = 300;
export const MIN_MEMORY = 16 * 1024 ** 2;
export const MIN_DISK = 1024 ** 2;

const noNul = (s: string) => !s.includes("\0");

/** The hypervisors a microVM sandbox can run on (backends/vm: one driver each); QEMU is the default. */
export const VMM_NAMES = ["qemu", "cloud-hypervisor", "firecracker"] as const;
export type VmmName = (typeof VMM_NAMES)[number];

function size(what: string, min: number, max: number) {
  return z.union([z.number(), z.string()]).transform((v, ctx) => {
    const bytes = parseSize(v);
    if (bytes === undefined) {
      ctx.addIssue({ code: "custom", message: `${what} must be bytes or a size like "512M" or "2GiB", got ${JSON.stringify(v)}` });
      return z.NEVER;
    }
    if (bytes < min || bytes > max) {
      ctx.addIssue({ code: "custom", message: `${what} must be between ${min} and ${max} bytes, got ${bytes}` });
      return z.NEVER;
    }
    return bytes;
  });
}

const resources = z
  .object({
    vcpus: z.number().min(0.01, "vcpus must be at least 0.01").max(256, "vcpus must be at most 256").default(1),
    memory: size("memory", MIN_MEMORY, 1024 ** 4).default(512 * 1024 ** 2),
    pids: z.number().int("pids must be an integer").min(8, "pids must be at least 8").max(4_194_304).default(1024),
    disk: size("disk", MIN_DISK, 16 * 1024 ** 4).default(1024 ** 3),
  })
  .strict();

const lifetime = z
  .object({
    mode: z.enum(["ephemeral", "persistent"]).default("ephemeral"),
    timeoutSeconds: z.number().int().positive("timeoutSeconds must be positive").max(30 * 24 * 3600).optional(),
  })
  .strict();

/** A unicast MAC in lowercase colon form (the multicast bit, 0x01 of the first octet, clear). */
const MAC_PATTERN = /^[0-9a-f][02468ace](:[0-9a-f]{2}){5}$/;

/**
 * A microVM's fixed MAC and vsock CID, where an operator needs them known
 * (a DHCP reservation, a firewall rule, a NixOS module's `mac`/`cid`).
 * Absent fields are derived from the name (backends/vm/identity.ts).
 */
const identity = z
  .object({
    mac: z.string().regex(MAC_PATTERN, "must be a unicast MAC like 02:00:00:00:00:01 (lowercase hex, the first octet even)").optional(),
    // 0-2 are the hypervisor's, the host's and local; 2^32-1 is VMADDR_CID_ANY.
    cid: z.number().int("cid must be an integer").min(3, "cid must be at least 3 (0-2 are reserved)").max(0xfffffffe, "cid must be below 2^32-1").optional(),
  })
  .strict();

const absolutePath = z
  .string()
  .startsWith("/", "must be an absolute path")
  .max(4096)
  .refine(noNul, "must not contain NUL");

export const SandboxSpecSchema = z
  .object({
    name: z.string().regex(NAME_PATTERN, "must be 1-63 lowercase letters, digits or '-', not starting or ending with '-'").optional(),
    template: z.string().regex(TEMPLATE_PATTERN, "must be a template name (lowercase letters, digits, '.', '_', '-')"),
    backend: z.enum(["container", "vm", "gvisor"]).default("container"),
    /** Only with backend "vm"; absent there means "qemu". */
    vmm: z.enum(VMM_NAMES).optional(),
    /** Only with backend "vm": a fixed MAC and/or vsock CID instead of the name's. */
    identity: identity.optional(),
    resources: resources.prefault({}),
    env: z
      .record(z.string().regex(ENV_KEY, "environment variable names are letters, digits and '_'"), z.string().refine(noNul, "must not contain NUL"))
      .default({}),
    workdir: absolutePath.default("/"),
    network: NetworkSchema,
    lifetime: lifetime.prefault({}),
    labels: z
      .record(z.string().regex(LABEL_KEY, "label keys are letters, digits and '._/-'"), z.string().max(256).refine(noNul, "must not contain NUL"))
      .default({}),
    /** Host directories seen in the sandbox: bind mounts in a container, virtiofs in a VM. */
    shares: SharesSchema.optional(),
    /** The sandbox's Nix store: `writable` gives it a private writable layer and a Nix database (nix-build inside). */
    nix: NixSpecSchema.optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.vmm !== undefined && s.backend !== "vm") {
      ctx.addIssue({ code: "custom", path: ["vmm"], message: `vmm chooses a microVM's hypervisor: it needs backend "vm", not "${s.backend}"` });
    }
    if (s.identity !== undefined && s.backend !== "vm") {
      ctx.addIssue({ code: "custom", path: ["identity"], message: `identity fixes a microVM's MAC and vsock CID: it needs backend "vm", not "${s.backend}"` });
    }
  });

export type SandboxSpecInput = z.input<typeof SandboxSpecSchema>;
type Parsed = z.output<typeof SandboxSpecSchema>;

export interface FixedIdentity {
  readonly mac?: string;
  readonly cid?: number;
}

/** A spec with every default filled in and sizes in bytes. */
export interface ResolvedSpec {
  readonly name: string | undefined;
  readonly template: string;
  /** container: crun; gvisor: the same container run by gVisor's runsc; vm: a microVM. */
  readonly backend: "container" | "vm" | "gvisor";
  /** The hypervisor of a microVM (backend "vm" only; rows written before it existed lack it: QEMU). */
  readonly vmm?: VmmName;
  /** A VM's fixed MAC and/or vsock CID (absent: both from its name). */
  readonly identity?: FixedIdentity;
  readonly resources: {
    readonly vcpus: number;
    readonly memory: number;
    readonly pids: number;
    readonly disk: number;
  };
  readonly env: Readonly<Record<string, string>>;
  readonly workdir: string;
  /** "none", "nat" or an object (core/network-spec.ts; networkPolicy() reads any of them). */
  readonly network: ResolvedNetworkField;
  readonly lifetime: {
    readonly mode: "ephemeral" | "persistent";
    /** Seconds until the sandbox is removed; undefined: never (persistent). */
    readonly timeoutSeconds: number | undefined;
  };
  readonly labels: Readonly<Record<string, string>>;
  /** Host directories it sees (absent: none). */
  readonly shares?: readonly ShareSpec[];
  /** What it may do with its /nix/store (absent: read it). */
  readonly nix?: NixSpec;
}

/**
 * Validates untrusted input into a ResolvedSpec. Throws InvalidSpecError
 * naming every bad field by its path.
 */
export function parseSpec(input: unknown): ResolvedSpec {
  // reportInput: without it a zod 4 issue has no input, and a wrong type read as "is required".
  const r = SandboxSpecSchema.safeParse(input, { reportInput: true });
  if (!r.success) {
    const issues: SpecIssue[] = r.error.issues.flatMap(unionBranch).map((i) => ({
      path: i.path.map(String).join("."),
      message: issueMessage(i),
    }));
    throw new InvalidSpecError(issues);
  }
  return resolve(r.data);
}

/**
 * A field that takes one of several shapes (network: a word or an object)
 * fails as a whole in zod; the user needs the issues of the shape they
 * meant: the branch whose first issue is not about the value's type.
 */
function unionBranch(i: z.core.$ZodIssue): z.core.$ZodIssue[] {
  if (i.code !== "invalid_union" || i.errors.length === 0) return [i];
  const meant = i.errors.find((b) => b.length > 0 && !(b[0]!.path.length === 0 && (b[0]!.code === "invalid_type" || b[0]!.code === "invalid_value")));
  if (!meant) return [{ ...i, message: i.errors.flat().map((b) => b.message).filter((m, n, all) => all.indexOf(m) === n).join(", or ") }];
  return meant.flatMap((b) => unionBranch({ ...b, path: [...i.path, ...b.path] }));
}

function issueMessage(i: z.core.$ZodIssue): string {
  if (i.code === "unrecognized_keys") return `unknown field(s) ${i.keys.map((k) => JSON.stringify(k)).join(", ")}`;
  if (i.code === "invalid_type" && i.input === undefined) return "is required";
  if (i.code === "invalid_key") return i.issues.map((k) => k.message).join("; ");
  return i.message;
}

function resolve(p: Parsed): ResolvedSpec {
  const persistent = p.lifetime.mode === "persistent";
  return {
    name: p.name,
    template: p.template,
    backend: p.backend,
    ...(p.backend === "vm" ? { vmm: p.vmm ?? "qemu" } : {}),
    ...(p.identity && (p.identity.mac !== undefined || p.identity.cid !== undefined)
      ? { identity: { ...(p.identity.mac !== undefined ? { mac: p.identity.mac } : {}), ...(p.identity.cid !== undefined ? { cid: p.identity.cid } : {}) } }
      : {}),
    resources: { ...p.resources },
    env: p.env,
    workdir: p.workdir,
    network: p.network,
    lifetime: {
      mode: p.lifetime.mode,
      timeoutSeconds: p.lifetime.timeoutSeconds ?? (persistent ? undefined : DEFAULT_EPHEMERAL_TIMEOUT_S),
    },
    labels: p.labels,
    ...(p.shares?.length ? { shares: p.shares } : {}),
    ...(p.nix?.writable ? { nix: p.nix } : {}),
  };
}
