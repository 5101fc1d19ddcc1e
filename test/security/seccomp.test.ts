// The seccomp allowlist (src/backends/container/seccomp.ts): system calls
// outside it fail (EPERM for the known escape and kernel-bug routes, ENOSYS
// for anything unlisted), ordinary work goes on. A static probe (musl, built
// here from native/syscall-probe.c) makes each call inside a sandbox, since
// busybox has no way to make an arbitrary one. On crun and, where runsc
// runs, on gVisor (whose sentry applies the same profile).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { freshState, type TestState } from "../helpers/state.js";
import { runscUnusable } from "../helpers/runsc.js";
import { buildProbe, copyIn } from "../helpers/probe.js";

const EPERM = 1;
const ENOSYS = 38;

/** Escape routes and kernel attack surface: refused with EPERM. */
const REFUSED: Record<string, string> = {
  keyctl: "keyrings are not namespaced (CVE-2016-0728)",
  add_key: "keyrings are not namespaced",
  bpf: "eBPF verifier bugs (CVE-2021-3490, CVE-2023-2163)",
  userfaultfd: "stalls kernel copies to win races (CVE-2021-22555 exploits)",
  kexec_load: "replaces the host kernel",
  open_by_handle_at: "the 2014 'shocker' escape",
  perf_event_open: "perf bugs (CVE-2023-2235)",
  unshare_user: "a user namespace's CAP_SYS_ADMIN (CVE-2022-0185)",
  clone_newuser: "the same through clone(CLONE_NEWUSER)",
  io_uring_setup: "io_uring skips seccomp for its operations (CVE-2022-29582)",
};

/** Not on the allowlist, harmless, and allowed by the old denylist: ENOSYS now. */
const UNLISTED = ["get_mempolicy", "set_mempolicy", "personality_exec", "socket_vsock"];

const ORDINARY = ["getpid", "personality_query", "clone_thread_like", "socket_unix"];

function parse(out: string): Map<string, string> {
  return new Map(out.trim().split("\n").map((l) => l.split(" ") as [string, string]));
}

for (const backend of ["container", "gvisor"] as const) {
  describe(`seccomp allowlist (${backend})`, async () => {
    const skip = backend === "gvisor" ? await runscUnusable() : undefined;
    let t: TestState;
    let id: string;
    let probe: Awaited<ReturnType<typeof buildProbe>>;
    let results: Map<string, string>;
    before(async () => {
      if (skip) return;
      probe = await buildProbe("syscall-probe");
      t = await freshState(`seccomp-${backend}`);
      id = (await t.s.create({ template: "busybox", backend })).id;
      await copyIn(t.s, id, probe.file, "/tmp/syscall-probe");
      const out: Buffer[] = [];
      const r = await t.s.exec(id, { cmd: `/tmp/syscall-probe ${[...Object.keys(REFUSED), ...UNLISTED, ...ORDINARY].join(" ")}` }, { onStdout: (b) => out.push(b) });
      assert.equal(r.exitCode, 0);
      results = parse(Buffer.concat(out).toString());
    });
    after(async () => {
      if (skip) return;
      await t.close();
      await probe.remove();
    });

    it("refuses the escape routes and kernel attack surface", { skip }, () => {
      for (const [name, why] of Object.entries(REFUSED)) {
        const got = results.get(name);
        // gVisor's sentry implements few of these itself: ENOSYS there is as good a refusal.
        const allowed = backend === "gvisor" ? [`errno=${EPERM}`, `errno=${ENOSYS}`] : [`errno=${EPERM}`];
        assert.ok(got !== undefined && allowed.includes(got), `${name} (${why}): ${got}`);
      }
    });

    it("refuses a call outside the allowlist (ENOSYS; EPERM under gVisor)", { skip }, () => {
      // gVisor's sentry does not take defaultErrnoRet: its refusal is EPERM.
      const refusal = backend === "gvisor" ? `errno=${EPERM}` : `errno=${ENOSYS}`;
      for (const name of UNLISTED) assert.equal(results.get(name), refusal, name);
    });

    it("lets ordinary calls through", { skip }, async () => {
      for (const name of ORDINARY) {
        // gVisor's own personality() rejects the query value (EINVAL): it got past the filter.
        if (backend === "gvisor" && name === "personality_query") assert.equal(results.get(name), "errno=22", name);
        else assert.equal(results.get(name), "ok", name);
      }
      const out: Buffer[] = [];
      const r = await t.s.exec(id, { cmd: "mkdir -p /tmp/w && cd /tmp/w && echo hi > f && ln -s f l && cat l && sh -c 'sleep 0.1 & wait' && ls -la . >/dev/null && echo done" }, { onStdout: (b) => out.push(b) });
      assert.equal(r.exitCode, 0);
      assert.equal(Buffer.concat(out).toString(), "hi\ndone\n");
    });
  });
}
