import assert from "node:assert/strict";
import type { Sandboxes } from "../../src/runtime/sandboxes.js";

/** Runs `cmd` with /bin/sh -c in a sandbox, asserts it exits 0, returns its stdout. */
export async function shOk(s: Sandboxes, id: string, cmd: string): Promise<string> {
  const out: Buffer[] = [];
  const r = await s.exec(id, { cmd }, { onStdout: (b) => out.push(b) });
  assert.equal(r.exitCode, 0, cmd);
  return Buffer.concat(out).toString();
}
