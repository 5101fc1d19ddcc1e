import fs from "node:fs";
import fsp from "node:fs/promises";
import { BackendError, ConflictError } from "../core/errors.js";
import { runCommand, type CommandOptions, type CommandResult } from "../host/command.js";

/**
 * A sandbox's private disk as a sparse ext4 image of exactly `bytes`
 * (`resources.disk`): what the sandbox writes there can never take more
 * of the host's disk than that. A persistent container mounts it through
 * corral-launch `--ext4`, a VM gets it as its block device. No reserved
 * blocks (-m 0), inode tables and journal written lazily, so the image
 * starts with a few hundred KiB allocated. Refused with the reason when
 * the host cannot make one (no mkfs.ext4), rather than a disk without a
 * cap.
 */
export async function makeDiskImage(
  file: string,
  bytes: number,
  run: (cmd: string, args: readonly string[]) => Promise<unknown> = runCommand,
): Promise<void> {
  const h = await fsp.open(file, "wx", 0o600);
  try {
    await h.truncate(bytes);
  } finally {
    await h.close();
  }
  try {
    await run("mkfs.ext4", ["-q", "-F", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1", file]);
  } catch (e) {
    await fsp.rm(file, { force: true });
    throw new BackendError(`cannot make a ${bytes}-byte disk image to cap the sandbox's disk (mkfs.ext4, from e2fsprogs): ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Copies /upper out of a stopped sandbox's ext4 disk image (mounted on a
 * loop device in a private mount namespace, so the mount cannot outlive
 * the copy; read-write, because a guest powered off with its disk mounted
 * leaves a journal to replay, as its next boot would). Overlay whiteouts
 * and opaque-dir xattrs come along (cp -a), as from an upper dir on the
 * host; owners are the sandbox's, which the store shifts like a
 * builder's output.
 */
export async function copyUpperFromImage(image: string, dest: string, mnt: string): Promise<void> {
  await fsp.mkdir(mnt);
  try {
    await runCommand("unshare", ["-m", "--propagation", "private", "sh", "-c", 'mount -o loop "$1" "$2" && cp -a -- "$2/upper" "$3"', "sh", image, mnt, dest]);
  } finally {
    await fsp.rmdir(mnt).catch(() => {});
  }
}

/**
 * Refuses a disk smaller than a stopped sandbox's image (its spec's disk
 * shrunk): ext4 shrinks only offline and only while what was written
 * fits, and a failed shrink loses the sandbox's data, so corral does not
 * try. Nothing to check without an image.
 */
export function checkDiskNotShrunk(file: string, bytes: number): void {
  const size = imageSize(file);
  if (size !== undefined && bytes < size) {
    throw new ConflictError(`a persistent sandbox's disk cannot shrink: its disk image is ${size} bytes, the new spec asks for ${bytes} (make a new sandbox for a smaller disk)`);
  }
}

/**
 * Grows a stopped sandbox's ext4 image to `bytes` (its spec's disk grew
 * since it was made): the file extended (sparse) and the filesystem grown
 * offline, `e2fsck -f` first as resize2fs requires of an unmounted one
 * (-p: only the fixes that need no questions; exit 1, "errors fixed", is
 * fine), then `resize2fs`. Called on start, before the image is mounted;
 * an image already that size is left alone; a smaller size is refused
 * (checkDiskNotShrunk). Resolves to whether it grew.
 */
export async function growDiskImage(
  file: string,
  bytes: number,
  run: (cmd: string, args: readonly string[], opts?: CommandOptions) => Promise<CommandResult> = runCommand,
): Promise<boolean> {
  const size = imageSize(file);
  if (size === undefined || size === bytes) return false;
  checkDiskNotShrunk(file, bytes);
  const fsck = await run("e2fsck", ["-f", "-p", file], { allowFailure: true });
  if (fsck.code > 1) throw new BackendError(`cannot grow the sandbox's disk image ${file}: e2fsck -f -p exited ${fsck.code} (the filesystem needs a manual check)`);
  await fsp.truncate(file, bytes);
  try {
    await run("resize2fs", [file]);
  } catch (e) {
    // The filesystem was not grown: give the file its old size back, so the spec and the image disagree only as before.
    await fsp.truncate(file, size);
    throw new BackendError(`cannot grow the sandbox's disk image ${file} to ${bytes} bytes (resize2fs): ${(e as Error).message}`, { cause: e });
  }
  return true;
}

function imageSize(file: string): number | undefined {
  try {
    return fs.statSync(file).size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}
