import fsp from "node:fs/promises";
import { pidAlive } from "../host/process.js";

/**
 * A lock file holding the owner's pid, for work several corral processes
 * may start at once (building the same template). A lock whose owner is
 * dead is taken over.
 */
export async function withLock<T>(file: string, fn: () => Promise<T>, timeoutMs = 30 * 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const h = await fsp.open(file, "wx");
      await h.writeFile(String(process.pid));
      await h.close();
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const owner = Number(await fsp.readFile(file, "utf8").catch(() => "0"));
      if (!owner || !pidAlive(owner)) {
        await fsp.rm(file, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for lock ${file} held by pid ${owner}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    return await fn();
  } finally {
    await fsp.rm(file, { force: true });
  }
}
