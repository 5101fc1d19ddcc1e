import type { ProgressFn } from "../builders/builder.js";

/**
 * A path directly in /nix/store: 32 base-32 hash characters, '-', a name
 * of Nix's allowed characters. The whole of it is checked because the
 * paths become bind mounts in every sandbox of the template.
 */
const STORE_PATH = /^\/nix\/store\/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-._?=]+$/;

export function isStorePath(p: string): boolean {
  return STORE_PATH.test(p) && !p.endsWith("/.") && !p.endsWith("/..");
}

/** Store paths printed one a line (nix-build, nix-store -qR), in order without repeats; throws on anything else. */
export function parseStorePaths(stdout: string, what: string): string[] {
  const lines = stdout.split("\n").map((l) => l.trim()).filter(Boolean);
  const bad = lines.find((l) => !isStorePath(l));
  if (bad !== undefined) throw new Error(`${what} printed ${JSON.stringify(bad)}, not a path in /nix/store`);
  return [...new Set(lines)];
}

/** "hash-name" of a store path: its entry in /nix/store. */
export function storeBaseName(p: string): string {
  return p.slice("/nix/store/".length);
}

/**
 * Turns nix-build's stderr into build progress: the plan ("these 2
 * derivations will be built") gives the count, each "building '...drv'"
 * one step of it. Builder output is not progress and is left out (it is in
 * the error when the build fails).
 */
export function nixProgressParser(progress: ProgressFn, from = 5, to = 80): (line: string) => void {
  let total = 0;
  let started = 0;
  return (line) => {
    const plan = /^these (\d+) derivations will be built/.exec(line) ?? (/^this derivation will be built/.test(line) ? ["", "1"] : null);
    if (plan) {
      total = Number(plan[1]);
      progress({ phase: "plan", message: `${total} derivation(s) to build`, percent: from });
      return;
    }
    const building = /^building '\/nix\/store\/[0-9a-z]{32}-(.+?)(\.drv)?'/.exec(line);
    if (building) {
      started++;
      const percent = total ? Math.round(from + ((to - from) * (started - 1)) / total) : from;
      progress({ phase: "build", message: `building ${building[1]}`, percent });
    }
  };
}

/**
 * The profile's bin/ entries: name → the output file it links to. Outputs
 * come in nix-build's order and the first one with a name keeps it, as in
 * a PATH search.
 */
export function profileLinks(bins: readonly { output: string; entries: readonly string[] }[]): Map<string, string> {
  const links = new Map<string, string>();
  for (const b of bins) {
    for (const e of [...b.entries].sort()) {
      if (e.includes("/") || e === "." || e === ".." || links.has(e)) continue;
      links.set(e, `${b.output}/bin/${e}`);
    }
  }
  return links;
}
