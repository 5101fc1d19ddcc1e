import { z } from "zod";

/** At most this many shares per sandbox (each is a bind mount, or a virtiofsd process and a device for a VM). */
export const MAX_SHARES = 16;

/**
 * A share's target: an absolute path of plain components. Its characters
 * are limited because a VM's targets travel on the guest's kernel command
 * line (`corral.share=`), which has no quoting and holds 2048 bytes.
 */
const TARGET = /^(\/[A-Za-z0-9._@+-]+)+$/;
export const MAX_SHARE_TARGET = 255;

/**
 * Where a share may not go: what corral itself mounts in every sandbox
 * (the kernel's file systems, the agent's socket under /run/corral, the
 * agent binary at /.corral). A share on, below or above one of them would
 * hide it or be hidden.
 */
export const RESERVED_TARGETS: readonly string[] = ["/proc", "/sys", "/dev", "/run", "/.corral"];

/** Whether `a` and `b` are the same path or one is below the other. */
export function pathsOverlap(a: string, b: string): boolean {
  return a === b || a.startsWith(`${b}/`) || b.startsWith(`${a}/`);
}

const noNul = (s: string) => !s.includes("\0");

export const ShareSchema = z
  .object({
    /** A host directory below one the operator allows (corral daemon --allow-share); checked where the sandbox is made. */
    source: z.string().startsWith("/", "must be an absolute path").max(4096).refine(noNul, "must not contain NUL"),
    target: z
      .string()
      .max(MAX_SHARE_TARGET)
      .regex(TARGET, "must be an absolute path of letters, digits and ._@+- (no spaces or commas), not /")
      .refine((t) => !t.split("/").some((c) => c === "." || c === ".."), "must not contain . or .. components")
      .refine((t) => !RESERVED_TARGETS.some((r) => pathsOverlap(t, r)), `must not be on, below or above ${RESERVED_TARGETS.join(", ")}`),
    readOnly: z.boolean().default(false),
  })
  .strict();

export const SharesSchema = z
  .array(ShareSchema)
  .max(MAX_SHARES, `at most ${MAX_SHARES} shares`)
  .superRefine((shares, ctx) => {
    const seen = new Map<string, number>();
    shares.forEach((s, i) => {
      const before = seen.get(s.target);
      if (before !== undefined) ctx.addIssue({ code: "custom", path: [i, "target"], message: `${s.target} is also shares.${before}'s target` });
      seen.set(s.target, i);
    });
  });

/** A host directory seen in the sandbox at `target`. */
export interface ShareSpec {
  readonly source: string;
  readonly target: string;
  readonly readOnly: boolean;
}

/** `nix` in the spec: what the sandbox may do with its /nix/store. */
export const NixSpecSchema = z
  .object({
    /**
     * A private writable layer over the read-only store (the template's
     * closure, or the host's store shared at /nix/store), with Nix's
     * database holding the store's registration, so nix-build inside uses
     * what is there and adds to it; the host's store is never written.
     */
    writable: z.boolean().default(false),
  })
  .strict();

export interface NixSpec {
  readonly writable: boolean;
}
