import fsp from "node:fs/promises";
import path from "node:path";

/**
 * The directories and files every sandbox root needs, whatever built it:
 * mount points the runtime uses and a minimal /etc.
 */
export async function ensureSkeleton(root: string): Promise<void> {
  for (const d of ["proc", "sys", "dev", "run", "tmp", "root", "etc", "work"]) {
    await fsp.mkdir(path.join(root, d), { recursive: true });
  }
  await fsp.chmod(path.join(root, "tmp"), 0o1777);
  await fsp.chmod(path.join(root, "root"), 0o700);
  const files: Record<string, string> = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    "etc/hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
  };
  for (const [rel, content] of Object.entries(files)) {
    await fsp.writeFile(path.join(root, rel), content, { flag: "wx" }).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "EEXIST") throw e;
    });
  }
}
