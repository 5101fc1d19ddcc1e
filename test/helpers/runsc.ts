import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { runCommand } from "../../src/host/command.js";

/**
 * Why gVisor sandboxes cannot run on this host, or undefined when they
 * can: runsc is installed and runs `/bin/true` in a throwaway sandbox (its
 * own state root, no cgroups, no network, the ptrace platform that needs
 * nothing of the host's virtualisation).
 */
export async function runscUnusable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return "runsc needs root";
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), "corral-runsc-check-"));
  try {
    const r = await runCommand("runsc", ["--root", root, "--ignore-cgroups", "--network=none", "--platform=ptrace", "do", "/bin/true"], {
      allowFailure: true,
      timeoutMs: 30_000,
    });
    return r.code === 0 ? undefined : `runsc cannot run a sandbox here (exit ${r.code}): ${r.stderr.trim().split("\n").slice(-2).join(" | ")}`;
  } catch (e) {
    return `runsc is not usable here: ${(e as Error).message}`;
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
}
