import { spawn, type ChildProcessByStdio } from "node:child_process";
import { PassThrough, type Readable, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { HostError, InvalidArgumentError } from "../core/errors.js";

/**
 * The host's side of `corral cp -r`: its GNU tar as a child process,
 * making the archive sent into a sandbox or extracting the one a sandbox
 * sent. Bytes stream through pipes (the child's and the request's own
 * back-pressure): nothing is held whole; tar's stderr is kept to its last
 * 4 KiB for the error line.
 */

const STDERR_KEPT = 4096;
/** What a made archive may hold in this process before the host's tar is stopped (pipe back-pressure). */
const TAR_BUFFER = 64 * 1024;

/**
 * A tar stream of `names` (relative to `cwd`) with numeric owners, symlinks
 * archived as symlinks (never followed). `done` settles when tar exits.
 */
export function tarCreate(cwd: string, names: readonly string[]): { stream: Readable; done: Promise<void> } {
  const child = spawn("tar", ["-c", "-f", "-", "--numeric-owner", "-C", cwd, "--", ...names], { stdio: ["ignore", "pipe", "pipe"] });
  // Read at once into a PassThrough: Node resumes (and so drops) a child's
  // stdout nobody reads when the child exits, and a small tree's tar exits
  // before the caller has its sandbox side ready (its first read came after
  // the end: the sandbox's tar saw an empty archive). Bounded: the
  // PassThrough holds TAR_BUFFER, then pipe() stops reading and tar blocks.
  const out = new PassThrough({ highWaterMark: TAR_BUFFER });
  child.stdout.once("error", (e) => out.destroy(e));
  child.stdout.pipe(out);
  return { stream: out, done: exited(child, "archive") };
}

/**
 * Extracts the tar stream `source` (made by a sandbox, so hostile for all
 * we know) into `dir`, which exists, dropping the first `strip` name
 * components. GNU tar's own guards hold: members named "../x" or "/x" are
 * refused or made relative, and a symlink whose target is absolute or
 * climbs ("x -> /", "x -> ../..") is put in place only after every other
 * member, so "x/etc/evil" cannot be written through it (CVE-2001-1267's
 * class of tar traversal; test/functional/cli-cp.test.ts sends one).
 * Owners are not restored and permissions pass through the umask (no
 * setuid/setgid bits from a sandbox); run as root, tar also loses
 * CAP_MKNOD (setpriv), so a sandbox cannot plant a device node (`b 8 0`,
 * the host's disk) in the user's tree: such a member fails the copy.
 */
export async function tarExtract(dir: string, source: Readable, strip: number): Promise<void> {
  const args = ["-x", "-f", "-", "-C", dir, "--no-same-owner", "--no-same-permissions", ...(strip ? [`--strip-components=${strip}`] : [])];
  const root = process.getuid?.() === 0;
  const child = root ? spawn("setpriv", ["--bounding-set=-mknod", "--", "tar", ...args], { stdio: ["pipe", "ignore", "pipe"] }) : spawn("tar", args, { stdio: ["pipe", "ignore", "pipe"] });
  // The source failing (the sandbox's tar, the connection) says why before
  // tar does (it only sees its input end early); tar exiting first (a
  // refused member) makes its stdin fail with EPIPE, and its exit says why.
  let sourceFailed: Error | undefined;
  source.once("error", (e) => (sourceFailed ??= e));
  const [fed, done] = await Promise.allSettled([pipeline(source, child.stdin as Writable), exited(child, "extract")]);
  if (sourceFailed) throw sourceFailed;
  if (done.status === "rejected") throw done.reason;
  if (fed.status === "rejected") throw fed.reason;
}

/** Resolves when tar exits 0; otherwise its last stderr line, as one error line. */
function exited(child: ChildProcessByStdio<Writable | null, Readable | null, Readable>, what: string): Promise<void> {
  let tail = Buffer.alloc(0);
  child.stderr.on("data", (b: Buffer) => {
    const all = Buffer.concat([tail, b]);
    tail = all.subarray(Math.max(0, all.length - STDERR_KEPT));
  });
  return new Promise((resolve, reject) => {
    child.once("error", (e: NodeJS.ErrnoException) => {
      const tool = child.spawnargs[0] ?? "tar";
      reject(e.code === "ENOENT" ? new HostError(`copying directories needs ${tool} on this host (not found in PATH)`) : e);
    });
    child.once("close", (code, signal) => {
      if (code === 0) return resolve();
      const lines = tail.toString().trim().split("\n").filter((l) => !/Exiting with failure status/.test(l));
      const said = (lines[lines.length - 1] ?? "").replace(/^tar: /, "") || (signal ? `killed by ${signal}` : `exit status ${code}`);
      reject(new InvalidArgumentError(`host tar could not ${what}: ${said}`));
    });
  });
}
