import fsp from "node:fs/promises";
import { BackendError } from "../core/errors.js";
import { runCommand } from "../host/command.js";

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
