import { spawn } from "node:child_process";
import type { Duplex, Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { BackendError, HostError } from "../core/errors.js";

/**
 * Extracts a tar stream into `dir` with GNU tar as root: numeric owners,
 * modes and owners kept (they are shifted into the sandbox range later).
 * The caller validates members in `source` before they reach tar; GNU
 * tar's own refusal of `..` and leading `/` stays on as a second guard.
 * `stages` are a readable and the transforms it flows through, in order.
 * When a stage fails, tar is killed and has exited before this rejects,
 * so the caller can remove `dir` without a writer racing it.
 */
export async function extractTar(dir: string, stages: readonly [Readable, ...Duplex[]]): Promise<void> {
  const child = spawn("tar", ["-x", "--numeric-owner", "--same-owner", "-p", "-f", "-", "-C", dir], {
    stdio: ["pipe", "ignore", "pipe"],
  });
  const err: Buffer[] = [];
  child.stderr.on("data", (c: Buffer) => err.push(c));
  const exited = new Promise<{ code: number | null; spawnError?: Error }>((resolve) => {
    child.on("error", (e) => resolve({ code: null, spawnError: e }));
    child.on("close", (code) => resolve({ code }));
  });
  let sourceError: unknown;
  try {
    await pipeline([...stages, child.stdin]);
  } catch (e) {
    sourceError = e;
    child.kill("SIGKILL");
  }
  const r = await exited;
  if (r.spawnError) {
    const code = (r.spawnError as NodeJS.ErrnoException).code;
    throw code === "ENOENT" ? new HostError("tar is not installed on this host") : new BackendError(`tar: ${r.spawnError.message}`);
  }
  const stderr = Buffer.concat(err).toString().trim().split("\n").slice(-5).join("\n");
  // An EPIPE means tar stopped reading: its own message says why.
  if (sourceError && (sourceError as NodeJS.ErrnoException).code !== "EPIPE") throw sourceError;
  if (r.code !== 0 || sourceError) throw new BackendError(`tar could not extract the layer (exit ${r.code}): ${stderr}`);
}
