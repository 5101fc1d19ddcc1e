import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Sandboxes } from "../../src/runtime/sandboxes.js";
import { FakeBackend, FakeVmBackend } from "./fake-backend.js";
import { FakeHost } from "./fake-host.js";

export interface FakeRuntime {
  readonly s: Sandboxes;
  readonly container: FakeBackend;
  readonly vm: FakeVmBackend;
  readonly host: FakeHost;
  readonly stateDir: string;
  /** The one layer of template "tpl". */
  readonly layer: string;
  /** Opens the same state dir again (as another process would), over the same fakes. */
  reopen(): Promise<Sandboxes>;
  close(): Promise<void>;
}

/**
 * Sandboxes over a fake container and a fake VM backend and a fake host,
 * in a temporary state dir: no root, nothing on the host but files under
 * /tmp. Template "tpl" names one layer (a digest only: the fakes never
 * look at it).
 */
export async function fakeRuntime(opts: { longLived?: boolean } = {}): Promise<FakeRuntime> {
  const base = await fsp.mkdtemp(path.join(os.tmpdir(), "corral-fake-"));
  const stateDir = path.join(base, "state");
  const container = new FakeBackend("container");
  const vm = new FakeVmBackend();
  const host = new FakeHost();
  host.spawnProcess(process.pid, 1); // the creator of what this process creates
  const open = () =>
    Sandboxes.openWith({
      stateDir,
      cgroupParent: "corral-fake",
      backends: new Map([
        ["container", container],
        ["vm", vm],
      ]),
      host,
      ...opts,
    });
  const s = await open();
  const layer = "ab".repeat(32);
  await s.store.registerTemplate("tpl", [layer], "test");
  const opened = [s];
  return {
    s,
    container,
    vm,
    host,
    stateDir,
    layer,
    async reopen() {
      const again = await open();
      opened.push(again);
      return again;
    },
    async close() {
      for (const x of opened) x.close();
      await fsp.rm(base, { recursive: true, force: true });
    },
  };
}
