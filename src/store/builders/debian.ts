import fs from "node:fs";
import { runCommand } from "../../host/command.js";
import type { ProgressFn, TemplateBuilder } from "./builder.js";
import { ensureSkeleton } from "./skeleton.js";

export const DEBIAN_SUITE = "bookworm";
export const DEBIAN_PACKAGES = ["bash", "coreutils", "python3", "git", "ca-certificates"];

/** mmdebstrap's steps, in order, with how far along each means we are. */
const STEPS: readonly [RegExp, string, number][] = [
  [/running apt-get update/, "update", 5],
  [/downloading packages/, "download", 15],
  [/extracting archives/, "extract", 35],
  [/installing essential packages/, "install", 45],
  [/installing remaining packages/, "install", 65],
  [/cleaning package lists/, "cleanup", 85],
  [/success in/, "done", 90],
];

/** Debian minbase with bash, coreutils, python3, git, ca-certificates. */
export const debianBuilder: TemplateBuilder = debianWith("debian", DEBIAN_PACKAGES);

/**
 * The same with Debian's Nix (nix-bin, 2.8): a base for Nix templates whose
 * sandboxes build with `nix: { writable: true }` (store/nix/nix-db-layer.ts).
 */
export const debianNixBuilder: TemplateBuilder = debianWith("debian-nix", [...DEBIAN_PACKAGES, "nix-bin"]);

function debianWith(name: string, packages: readonly string[]): TemplateBuilder {
  return {
    name,
    description: `Debian ${DEBIAN_SUITE} minbase with ${packages.join(", ")} (mmdebstrap)`,
    build: (dir, progress) => buildDebian(dir, packages, progress),
  };
}

async function buildDebian(dir: string, packages: readonly string[], progress: ProgressFn): Promise<{ source: string }> {
  progress({ phase: "start", message: `mmdebstrap ${DEBIAN_SUITE}`, percent: 0 });
  const args = [
    "--mode=root",
    "--variant=minbase",
    `--include=${packages.join(",")}`,
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-include=/usr/share/locale/locale.alias",
    DEBIAN_SUITE,
    dir,
    ...mirrors(),
  ];
  await runCommand("mmdebstrap", args, { onStderrLine: stepParser(progress) });
  await ensureSkeleton(dir);
  return { source: `mmdebstrap:${DEBIAN_SUITE}:minbase+${packages.join(",")}` };
}

/** Use the host's apt sources when it is a Debian of the same suite. */
function mirrors(): string[] {
  for (const f of ["/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"]) {
    try {
      const text = fs.readFileSync(f, "utf8");
      if (new RegExp(`^\\s*(Suites:.*\\b|deb\\s+\\S+\\s+)${DEBIAN_SUITE}\\b`, "m").test(text)) return [f];
    } catch {
      /* not there */
    }
  }
  return [];
}

function stepParser(progress: ProgressFn): (line: string) => void {
  return (line) => {
    for (const [re, phase, percent] of STEPS) {
      if (re.test(line)) {
        progress({ phase, message: line.replace(/^I: /, ""), percent });
        return;
      }
    }
  };
}
