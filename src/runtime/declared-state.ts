import { z } from "zod";
import { InvalidArgumentError, InvalidSpecError } from "../core/errors.js";
import { NAME_PATTERN, parseSpec, type ResolvedSpec } from "../core/sandbox-spec.js";
import { isStorePath } from "../store/nix/nix-paths.js";

/**
 * The operator's declared state: one JSON file (the NixOS module renders
 * it: nix/module.nix; docs/nixos.md) that `corral daemon --declared FILE`
 * applies on start and on SIGHUP (declared.ts). Version 1.
 */
export interface DeclaredState {
  /** Host directories sandboxes may see (runtime/shares.ts), beside the daemon's --allow-share. */
  readonly allowedShares: readonly string[];
  /** The backend of an API request that names none. */
  readonly defaultBackend: ResolvedSpec["backend"] | undefined;
  readonly apiKeys: readonly DeclaredKey[];
  readonly pools: readonly DeclaredPool[];
  readonly sandboxes: ReadonlyMap<string, DeclaredSandbox>;
}

export interface DeclaredKey {
  readonly tenant: string;
  /** A file holding the whole key, `crl_<id>_<secret>` (outside the Nix store: it is a secret). */
  readonly file: string;
}

export interface DeclaredPool {
  readonly template: string;
  readonly size: number;
  readonly backend: ResolvedSpec["backend"];
  readonly resources: Record<string, unknown>;
}

export interface DeclaredSandbox {
  readonly tenant: string;
  /** The spec, its name the declared one; a closure's template named `declared-<name>`. */
  readonly spec: ResolvedSpec;
  /** Store paths whose closure is the sandbox's template (the module's `template = pkgs.hello` or a list). */
  readonly nixOutputs: readonly string[] | undefined;
  readonly autoStart: boolean;
  readonly restartIfChanged: boolean;
}

const backend = z.enum(["container", "vm", "gvisor"]);
const tenant = z.string().regex(NAME_PATTERN, "must be a tenant name (1-63 lowercase letters, digits or '-')");

const FileSchema = z
  .object({
    version: z.literal(1, "must be 1 (this corral reads version 1 of the declared state)"),
    allowedShares: z.array(z.string()).default([]),
    defaultBackend: backend.optional(),
    apiKeys: z.array(z.object({ tenant, file: z.string().startsWith("/", "must be an absolute path") }).strict()).default([]),
    pools: z
      .array(
        z
          .object({
            template: z.string(),
            size: z.number().int().min(0).max(10_000),
            backend: backend.default("container"),
            resources: z.record(z.string(), z.unknown()).default({}),
          })
          .strict(),
      )
      .default([]),
    sandboxes: z
      .record(
        z.string().regex(NAME_PATTERN, "sandbox names are 1-63 lowercase letters, digits or '-'"),
        z
          .object({
            tenant: tenant.default("local"),
            spec: z.record(z.string(), z.unknown()),
            nixOutputs: z.array(z.string().refine(isStorePath, "must be a path in /nix/store")).min(1).optional(),
            autoStart: z.boolean().default(true),
            restartIfChanged: z.boolean().default(true),
          })
          .strict(),
      )
      .default({}),
  })
  .strict();

/** The name of the template a declared closure gets. */
export const declaredTemplateName = (sandbox: string) => `declared-${sandbox}`;

/**
 * Parses and checks a declared state file's text. Every error names where
 * in the file it is (`sandboxes.dev.spec.resources.memory: ...`).
 */
export function parseDeclared(text: string): DeclaredState {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new InvalidArgumentError(`the declared state is not JSON: ${(e as Error).message}`);
  }
  const r = FileSchema.safeParse(json);
  if (!r.success) {
    const message = (i: z.core.$ZodIssue) => (i.code === "invalid_key" ? i.issues.map((k) => k.message).join("; ") : i.message);
    throw new InvalidArgumentError(`the declared state is invalid: ${r.error.issues.map((i) => `${i.path.map(String).join(".") || "(root)"}: ${message(i)}`).join("; ")}`);
  }
  const f = r.data;
  const sandboxes = new Map<string, DeclaredSandbox>();
  for (const [name, d] of Object.entries(f.sandboxes)) {
    const input = { ...d.spec, name, ...(d.nixOutputs ? { template: declaredTemplateName(name) } : {}) };
    let spec: ResolvedSpec;
    try {
      spec = parseSpec(input);
    } catch (e) {
      if (!(e instanceof InvalidSpecError)) throw e;
      throw new InvalidArgumentError(`the declared state is invalid: ${e.issues.map((i) => `sandboxes.${name}.spec.${i.path}: ${i.message}`).join("; ")}`);
    }
    if (!d.autoStart && spec.lifetime.mode !== "persistent") {
      throw new InvalidArgumentError(`the declared state is invalid: sandboxes.${name}.autoStart: false needs a persistent sandbox (an ephemeral one's files live only while it runs)`);
    }
    sandboxes.set(name, { tenant: d.tenant, spec, nixOutputs: d.nixOutputs, autoStart: d.autoStart, restartIfChanged: d.restartIfChanged });
  }
  return { allowedShares: f.allowedShares, defaultBackend: f.defaultBackend, apiKeys: f.apiKeys, pools: f.pools, sandboxes };
}
