import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { runCommand } from "../../src/host/command.js";
import type { Sandboxes } from "../../src/runtime/sandboxes.js";

const NATIVE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../test/security/native");

/** A static (musl) build of test/security/native/<name>.c in a temp dir; `remove` deletes it. */
export async function buildProbe(name: string): Promise<{ file: string; remove: () => Promise<void> }> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "corral-probe-"));
  const file = path.join(dir, name);
  await runCommand(process.env.CORRAL_CC ?? "musl-gcc", ["-static", "-O1", "-o", file, path.join(NATIVE, `${name}.c`)]);
  return { file, remove: () => fsp.rm(dir, { recursive: true, force: true }) };
}

/**
 * Copies a host file into a sandbox as an executable at `dest`, through a
 * command's stdin: gVisor 2022-12 has no openat2, which the files API needs.
 */
export async function copyIn(s: Sandboxes, id: string, file: string, dest: string): Promise<void> {
  const copy = await s.startExec(id, { cmd: `cat > ${dest} && chmod 755 ${dest}`, stdin: true });
  await copy.handle.writeStdin(await fsp.readFile(file));
  await copy.handle.closeStdin();
  assert.equal((await copy.outcome).exitCode, 0);
  copy.end();
}
