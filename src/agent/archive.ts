import path from "node:path";
import { Readable } from "node:stream";
import { ArchiveError, SandboxOperationError } from "../core/errors.js";
import type { AgentClient, ExecHandle, ExecResult } from "./client.js";

/**
 * Directory trees in and out of a sandbox as tar streams (`corral cp -r`,
 * the downloadArchive/uploadArchive operations), as `docker cp` moves
 * them. The tar is made and read INSIDE the sandbox by its own `tar`
 * (busybox's or GNU's), run through the agent's exec: so a hostile
 * archive sent in can write nowhere but the sandbox's own root, and what
 * comes out is only ever parsed by the host's tar under its own guards
 * (cli/host-tar.ts). Both directions go with the exec's per-command flow
 * control (docs/protocol.md, EXEC_WINDOW): nothing is held whole.
 */

/** Bytes of tar's stderr kept for the error message: its last ones (tar says why it failed in its last line). */
export const TAR_STDERR_KEPT = 4096;

/**
 * What an archive stream holds for a reader that is behind before tar's
 * output credit is held: 64 KiB here, plus at most one exec window (256
 * KiB) the agent had already sent, so ≤ 320 KiB per download.
 */
export const ARCHIVE_HIGH_WATER = 64 * 1024;

/**
 * A tar stream of `p` (a directory with everything under it, a file, a
 * symlink itself), its members named from p's basename ("dir/", "dir/a"),
 * numeric owners kept. 404 (sandbox_enoent) before any byte when nothing
 * is at `p`; `tar_missing` when the sandbox has no tar. A failure once
 * bytes flowed destroys the stream with the error. The caller closes the
 * agent connection when the stream closes: that kills a tar still running.
 */
export async function archiveOut(client: AgentClient, p: string): Promise<Readable> {
  await client.stat(p, false);
  const base = path.posix.basename(p);
  // "/" has no basename: its members are "./...".
  const argv = ["tar", "-c", "-f", "-", "--numeric-owner", "-C", path.posix.dirname(p), "--", base === "" ? "." : base];
  // Every chunk that found the stream full holds the credit until the reader reads (each its own hold).
  const waiting: (() => void)[] = [];
  const wake = () => waiting.splice(0).forEach((w) => w());
  const out = new Readable({ highWaterMark: ARCHIVE_HIGH_WATER, read: wake });
  out.once("close", wake);
  const err = new StderrTail();
  const h = client.exec(
    { argv, cwd: "/" },
    {
      // A full stream holds the command's credit until its reader reads again (ExecCallbacks).
      onStdout: (b) => (out.destroyed || out.push(b) ? undefined : new Promise<void>((r) => waiting.push(r))),
      onStderr: (b) => err.add(b),
    },
  );
  await started(h);
  h.result.then(
    (r) => (r.exitCode === 0 ? out.push(null) : out.destroy(failure(r, err, false))),
    (e: unknown) => out.destroy(e as Error),
  );
  return out;
}

/**
 * Extracts the tar stream `source` into directory `dir` (made, with its
 * parents, when missing), without restoring owners (`-o`: the files are
 * the sandbox user's, as `docker cp` makes them root's). Stdin goes within
 * the exec window, so at most 256 KiB of the body is in flight. Resolves
 * with `complete: false` when tar finished before the source did (the end
 * of an archive need not be the end of its body): the caller discards the
 * rest. Errors: 507 (sandbox_enospc) when the sandbox's disk fills,
 * `invalid_archive` (400) for what tar cannot read, `tar_missing`.
 */
export async function archiveIn(client: AgentClient, dir: string, source: AsyncIterable<Buffer>): Promise<{ complete: boolean }> {
  await client.mkdir(dir, { parents: true });
  const err = new StderrTail();
  const h = client.exec({ argv: ["tar", "-x", "-f", "-", "-o", "-C", dir], cwd: "/", stdin: true }, { onStderr: (b) => err.add(b) });
  await started(h);
  let exited = false;
  const result = h.result.finally(() => (exited = true));
  result.catch(() => {}); // awaited below
  let complete = true;
  for await (const chunk of source) {
    // A tar that stopped reading (a bad archive, a full disk) takes no more: stop, not read the rest into nothing.
    if (exited) {
      complete = false;
      break;
    }
    await h.writeStdin(chunk);
  }
  if (!exited) await h.closeStdin();
  const r = await result;
  if (r.exitCode !== 0) throw failure(r, err, true);
  return { complete };
}

/** Resolves once tar runs; a sandbox without one is told so by name. */
async function started(h: ExecHandle): Promise<void> {
  try {
    await h.pid;
  } catch (e) {
    h.result.catch(() => {});
    if (e instanceof SandboxOperationError && e.errno === "ENOENT") {
      throw new ArchiveError("tar_missing", "this sandbox has no tar in its PATH (copying directories needs one; busybox and debian templates have it)");
    }
    throw e;
  }
}

const FORMAT_PROBLEM = /does not look like a tar archive|unexpected EOF|damaged tar|invalid tar|short read|corrupted|skipping to next header|bad header|checksum/i;

/** Why tar failed, as an error with a code: a full disk is 507 however tar words it. */
function failure(r: ExecResult, err: StderrTail, extracting: boolean): Error {
  const said = err.lastLine() || (r.signal !== null ? `killed by signal ${r.signal}` : `exit status ${r.exitCode}`);
  const all = err.text();
  if (/No space left on device/i.test(all)) return new SandboxOperationError("ENOSPC", `the sandbox's disk is full (tar: ${said})`);
  if (/Disk quota exceeded/i.test(all)) return new SandboxOperationError("EDQUOT", `the sandbox's disk quota is used up (tar: ${said})`);
  if (extracting && FORMAT_PROBLEM.test(all)) return new ArchiveError("invalid_archive", `not a tar archive tar can read: ${said}`);
  return new ArchiveError("archive_failed", `tar in the sandbox failed: ${said}`);
}

/** The last TAR_STDERR_KEPT bytes of tar's stderr. */
class StderrTail {
  private kept = Buffer.alloc(0);

  add(b: Buffer): undefined {
    const all = Buffer.concat([this.kept, b]);
    this.kept = all.subarray(Math.max(0, all.length - TAR_STDERR_KEPT));
    return undefined;
  }

  text(): string {
    return this.kept.toString();
  }

  lastLine(): string {
    const lines = this.text().trim().split("\n");
    return (lines[lines.length - 1] ?? "").replace(/^tar: /, "").trim();
  }
}
