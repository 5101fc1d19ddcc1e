// /proc/<pid>/exe overwrite (CVE-2019-5736 class, issue 18 part 9): from
// inside a sandbox, open for writing /proc/1/exe (the agent),
// /proc/self/exe, the exe of every process it can see, the agent's binary,
// and, runc's attack, an O_PATH handle on a process's exe reopened for
// writing through /proc/self/fd after that process exits. Writing the
// exe of a live process fails (ETXTBSY, EACCES for the undumpable agent,
// EROFS for the agent's read-only tmpfs copy); the reopened handle reaches
// only the sandbox's own copy of its file (its overlay's upper layer: a
// copy-up; gVisor's sentry has no ETXTBSY, so there even a running
// command's exe is written, in that copy), never the shared layer, a sibling's view of it or any host
// binary: crun, runsc, corral-agent, corral-launch, corral-init, and every
// copy of them and every layer file in the state dir hash the same after.
// No runtime process ever enters a running sandbox here (commands are the
// agent's children), so there is no runtime exe to catch, as runc's was.
// VMs: the guest's root may rewrite the guest; the host's files must not change.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freshState, type TestState } from "../helpers/state.js";
import { shOk } from "../helpers/exec.js";
import { runscUnusable } from "../helpers/runsc.js";
import { buildProbe, copyIn } from "../helpers/probe.js";

const DIST_NATIVE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../native");

/** Every file under `dir` (not following links) with its sha256. */
async function hashTree(dir: string, into: Map<string, string>): Promise<void> {
  for (const e of await fsp.readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) await hashTree(p, into);
    else if (e.isFile()) into.set(p, createHash("sha256").update(await fsp.readFile(p)).digest("hex"));
  }
}

/** The host's binaries and the state dir's store (layers, the agent's copies). */
async function hostHashes(t: TestState): Promise<Map<string, string>> {
  const m = new Map<string, string>();
  for (const f of ["/usr/bin/crun", "/usr/bin/runsc"]) if (fs.existsSync(f)) m.set(f, createHash("sha256").update(fs.readFileSync(f)).digest("hex"));
  await hashTree(DIST_NATIVE, m);
  await hashTree(path.join(t.stateDir, "store"), m);
  return m;
}

for (const backend of ["container", "gvisor", "vm"] as const) {
  describe(`/proc/<pid>/exe overwrite, ${backend}`, async () => {
    const skip = backend === "gvisor" ? await runscUnusable() : undefined;
    let t: TestState;
    let probe: Awaited<ReturnType<typeof buildProbe>>;
    before(async () => {
      if (skip) return;
      probe = await buildProbe("exe-probe");
      t = await freshState(`exe-${backend}`);
    });
    after(async () => {
      if (skip) return;
      await t.close();
      await probe.remove();
    });

    it("cannot write any exe it sees, and reaches no host binary or shared layer", { skip }, async () => {
      const resources = { memory: "256M" };
      const attacker = (await t.s.create({ template: "busybox", backend, resources })).id;
      const sibling = (await t.s.create({ template: "busybox", backend, resources })).id;
      const before = await hostHashes(t);
      assert.ok([...before.keys()].some((f) => f.endsWith("/corral-agent")) && [...before.keys()].some((f) => f.endsWith("/bin/busybox")), "the store's agent and busybox are hashed");
      const siblingBusybox = await shOk(t.s, sibling, "md5sum /bin/busybox");
      await copyIn(t.s, attacker, probe.file, "/tmp/exe-probe");
      // Every live process's exe, the agent's binary, a running shell's own.
      const live = await shOk(t.s, attacker, "/tmp/exe-probe write /proc/1/exe /proc/self/exe /proc/$$/exe /.corral/corral-agent $(ls -d /proc/[0-9]*/exe)");
      console.log(`# ${backend}, live: ${live.trim().split("\n").join("; ")}`);
      const lines = live.trim().split("\n");
      assert.ok(lines.length >= 5);
      if (backend === "container") for (const l of lines) assert.match(l, / errno=\d+$/, `written: ${l}`);
      // gVisor's sentry has no ETXTBSY: a running command's exe is written,
      // in the sandbox's own copy (checked below); the agent's never. The
      // guest's root owns a VM's guest: only the host's files count there.
      if (backend === "gvisor") for (const l of lines.filter((x) => /^(\/proc\/1\/exe|\/\.corral\/)/.test(x))) assert.match(l, / errno=\d+$/, `written: ${l}`);
      if (backend !== "gvisor") {
        // runc's attack: a handle on an exited process's exe, reopened for writing.
        // (Not on gVisor: its busybox was just overwritten above.)
        const reopened = await shOk(t.s, attacker, "/tmp/exe-probe reopen-child /bin/sleep; /tmp/exe-probe reopen 1");
        console.log(`# ${backend}, reopened: ${reopened.trim().split("\n").join("; ")}`);
        if (backend === "container") assert.match(reopened.trim().split("\n")[1] ?? "", /^\/proc\/1\/exe errno=13$/, "the agent's exe is not even an O_PATH away");
      }
      // Whatever it wrote is its own copy: the sibling's busybox, the
      // shared layer and every host binary are as they were.
      assert.equal(await shOk(t.s, sibling, "md5sum /bin/busybox"), siblingBusybox);
      assert.equal(await shOk(t.s, sibling, "echo alive"), "alive\n");
      const after = await hostHashes(t);
      const changed = [...before].filter(([f, h]) => after.get(f) !== h).map(([f]) => f);
      assert.deepEqual(changed, [], "host files changed by the sandbox");
      await t.s.destroy(attacker);
      await t.s.destroy(sibling);
    });
  });
}
