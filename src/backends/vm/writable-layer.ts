import fsp from "node:fs/promises";
import { runCommand } from "../../host/command.js";

/**
 * Copies /upper out of a stopped VM's ext4 disk image (mounted on a loop
 * device in a private mount namespace, so the mount cannot outlive the
 * copy; read-write, because a guest powered off with its disk mounted
 * leaves a journal to replay, as its next boot would). The guest's overlay
 * whiteouts and opaque-dir xattrs come along (cp -a), as from a
 * container's upper dir; owners are the guest's, which the store shifts
 * like a builder's output.
 */
export async function copyUpperFromImage(image: string, dest: string, mnt: string): Promise<void> {
  await fsp.mkdir(mnt);
  try {
    await runCommand("unshare", ["-m", "--propagation", "private", "sh", "-c", 'mount -o loop "$1" "$2" && cp -a -- "$2/upper" "$3"', "sh", image, mnt, dest]);
  } finally {
    await fsp.rmdir(mnt).catch(() => {});
  }
}
