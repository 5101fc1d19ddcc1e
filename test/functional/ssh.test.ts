// SSH into sandboxes with the system's own OpenSSH client: `corral
// ssh-config > cfg; ssh -F cfg NAME`, strict host key checking on, through a
// corrald of its own process (so it can be SIGKILLed and started again).
// The host key stays across stop/start, a daemon SIGKILL and restart and
// promote; a snapshot's restored copy has its own; scp of 10 MiB comes
// back with the same hash; a key not registered for the tenant is refused.
// (Not `ssh -F <(corral ssh-config)`: OpenSSH closes every inherited fd
// above 2 before it reads -F, so /dev/fd/63 is gone by then; measured with
// OpenSSH 9.2: "Can't open user config file /dev/fd/63".)
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { freshState, type TestState } from "../helpers/state.js";
import { request } from "../helpers/daemon.js";
import { CLI, corralRemote } from "../helpers/cli.js";
import { spawnDaemon } from "../../src/server/spawn.js";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a shell line (bash: process substitution) with `env` over ours, stdin closed. */
function sh(line: string, env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const c = spawn("bash", ["-c", line], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d) => (stdout += d));
    c.stderr.on("data", (d) => (stderr += d));
    c.on("error", reject);
    c.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

const sha256 = (file: string) => createHash("sha256").update(fs.readFileSync(file)).digest("hex");

describe("ssh into sandboxes with OpenSSH", () => {
  let t: TestState;
  let key: string;
  let dir: string;
  let d: { proc: ChildProcess; url: string };
  let env: NodeJS.ProcessEnv;
  let corral: string;
  /** ssh's options every call shares: our key only, no agent, no questions. */
  let opts: string;

  const daemon = () => spawnDaemon(t.stateDir, { CORRAL_CGROUP_PARENT: t.cgroupParent });
  async function kill9(proc: ChildProcess): Promise<void> {
    const gone = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGKILL");
    await gone;
  }
  const remoteEnv = () => ({ ...env, CORRAL_API_URL: d.url });
  /** ssh-config's output, fresh each time (it also writes corral's known_hosts), in a file for -F. */
  const config = () => `${corral} ssh-config > ${dir}/cfg && `;
  const ssh = (name: string, cmd: string, identity = path.join(dir, "id")) => sh(`${config()}ssh -F ${dir}/cfg ${opts} -i ${identity} ${name} -- ${cmd}`, remoteEnv());
  const hostKeyOf = async (id: string) => (await request(d.url, "GET", `/v1/sandboxes/${id}/ssh/host-key`, { key })).json<{ knownHosts: string }>().knownHosts;

  before(async () => {
    t = await freshState("ssh");
    key = t.s.tenants.createKey("sshers").key;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "corral-ssh-test-"));
    for (const k of ["id", "other"]) {
      const r = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `${k}@test`, "-f", path.join(dir, k)], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
    }
    // corral's known_hosts under the test's own config dir; no ssh-agent's keys.
    env = { CORRAL_API_KEY: key, CORRAL_STATE_DIR: "/nonexistent/corral", XDG_CONFIG_HOME: path.join(dir, "config"), SSH_AUTH_SOCK: "" };
    corral = `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)}`;
    opts = "-o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=60";
    d = await daemon();
  });
  after(async () => {
    if (d) await kill9(d.proc);
    fs.rmSync(dir, { recursive: true, force: true });
    await t?.close();
  });

  const create = async (name: string, lifetime: "ephemeral" | "persistent" = "persistent") => {
    const r = await request(d.url, "POST", "/v1/sandboxes", { key, json: { template: "busybox", name, lifetime: { mode: lifetime } } });
    assert.equal(r.status, 201, r.text);
    return r.json<{ id: string }>().id;
  };

  it("registers the tenant's key with corral admin ssh-key add; a bad key is one line", async () => {
    const added = await corralRemote(d.url, key, "admin", "ssh-key", "add", path.join(dir, "id.pub"));
    assert.equal(added.code, 0, added.stderr);
    const fp = spawnSync("ssh-keygen", ["-l", "-f", path.join(dir, "id.pub")], { encoding: "utf8" }).stdout.split(" ")[1];
    assert.match(added.stdout, new RegExp(`^[0-9a-f]{12} ${fp!.replace(/[+/]/g, "\\$&")} id@test\n$`));
    const ls = await corralRemote(d.url, key, "admin", "ssh-key", "ls");
    assert.match(ls.stdout, new RegExp(`sshers ssh-ed25519 ${fp!.replace(/[+/]/g, "\\$&")}`));
    const again = await corralRemote(d.url, key, "admin", "ssh-key", "add", path.join(dir, "id.pub"));
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^corral: .*already has the key.*\n$/);
    fs.writeFileSync(path.join(dir, "bad.pub"), "ssh-ed25519 AAAAnotakey x\n");
    const bad = await corralRemote(d.url, key, "admin", "ssh-key", "add", path.join(dir, "bad.pub"));
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr.trim().split("\n").length, 1);
  });

  it("ssh -F (corral ssh-config) NAME -- echo ok prints ok with strict host key checking", async () => {
    const id = await create("s1");
    const cfg = await sh(`${corral} ssh-config s1`, remoteEnv());
    assert.equal(cfg.code, 0, cfg.stderr);
    assert.match(cfg.stdout, /^Host s1\n/);
    assert.match(cfg.stdout, /ProxyCommand .* ssh-proxy /);
    assert.match(cfg.stdout, /StrictHostKeyChecking yes/);
    const r = await ssh("s1", "echo ok");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "ok\n");
    // The key ssh checked is the one the API gives, and in corral's known_hosts.
    const known = fs.readFileSync(path.join(dir, "config", "corral", "known_hosts"), "utf8");
    assert.ok(known.includes(await hostKeyOf(id)));
    // The remote command's exit status is ssh's.
    assert.equal((await ssh("s1", "'exit 3'")).code, 3);
    // corral ssh NAME -- CMD runs the system's ssh the same way.
    const viaCorral = await sh(`${corral} ssh -i ${dir}/id s1 -- echo via-corral '&&' exit 5`, remoteEnv());
    assert.deepEqual([viaCorral.code, viaCorral.stdout], [5, "via-corral\n"], viaCorral.stderr);
  });

  it("refuses a key not registered for the tenant", async () => {
    const r = await ssh("s1", "echo ok", path.join(dir, "other"));
    assert.equal(r.code, 255);
    assert.match(r.stderr, /Permission denied \(publickey\)/);
    assert.equal(r.stdout, "");
  });

  it("keeps the host key across promote, stop/start, and a daemon SIGKILL and restart", async () => {
    const eph = await create("prom", "ephemeral");
    assert.equal((await ssh("prom", "echo first")).stdout, "first\n");
    const p0 = await hostKeyOf(eph);
    const promoted = await request(d.url, "POST", `/v1/sandboxes/${eph}/promote`, { key });
    assert.ok(promoted.status < 300, promoted.text);
    assert.equal(await hostKeyOf(eph), p0);
    assert.equal((await ssh("prom", "echo promoted")).stdout, "promoted\n");

    const id = await create("keep");
    assert.equal((await ssh("keep", "echo first")).stdout, "first\n");
    const k0 = await hostKeyOf(id);
    for (const op of ["stop", "start"]) {
      const r = await request(d.url, "POST", `/v1/sandboxes/${id}/${op}`, { key });
      assert.ok(r.status < 300, `${op}: ${r.text}`);
    }
    assert.equal(await hostKeyOf(id), k0);
    // Strict checking against the known_hosts written before the stop: a new key would fail here.
    const restarted = await ssh("keep", "echo after-restart");
    assert.equal(restarted.stdout, "after-restart\n", restarted.stderr);
    await kill9(d.proc);
    d = await daemon();
    assert.equal(await hostKeyOf(id), k0);
    const r = await ssh("keep", "echo after-sigkill");
    assert.equal(r.stdout, "after-sigkill\n", r.stderr);
  });

  it("scp round-trips 10 MiB with the same hash", async () => {
    const src = path.join(dir, "ten");
    fs.writeFileSync(src, randomBytes(10 * 1024 * 1024));
    const back = path.join(dir, "ten.back");
    const up = await sh(`${config()}scp -F ${dir}/cfg ${opts} -i ${dir}/id ${src} s1:/tmp/ten`, remoteEnv());
    assert.equal(up.code, 0, up.stderr);
    const inside = await ssh("s1", "sha256sum /tmp/ten");
    assert.equal(inside.stdout.split(" ")[0], sha256(src));
    const down = await sh(`${config()}scp -F ${dir}/cfg ${opts} -i ${dir}/id s1:/tmp/ten ${back}`, remoteEnv());
    assert.equal(down.code, 0, down.stderr);
    assert.equal(sha256(back), sha256(src));
  });

  it("gives a shell on a terminal (ssh -tt) and sftp", async () => {
    const tty = await sh(`${config()}ssh -tt -F ${dir}/cfg ${opts} -i ${dir}/id s1 -- 'tty; stty size; exit 4'`, remoteEnv());
    assert.equal(tty.code, 4, tty.stderr);
    assert.match(tty.stdout, /^\/dev\/pts\/\d+\r\n24 80\r\n/);
    fs.writeFileSync(path.join(dir, "batch"), `mkdir /tmp/sf\nput ${dir}/batch /tmp/sf/b\nrename /tmp/sf/b /tmp/sf/c\nls /tmp/sf\nget /tmp/sf/c ${dir}/got\n`);
    const sftp = await sh(`${config()}sftp -F ${dir}/cfg ${opts} -i ${dir}/id -b ${dir}/batch s1`, remoteEnv());
    assert.equal(sftp.code, 0, sftp.stderr);
    assert.match(sftp.stdout, /\/tmp\/sf\/c/);
    assert.equal(fs.readFileSync(path.join(dir, "got"), "utf8"), fs.readFileSync(path.join(dir, "batch"), "utf8"));
  });

  it("forwards a local port to the sandbox's loopback with ssh -L; a closed port is refused", async () => {
    const body = randomBytes(300_000).toString("hex");
    fs.writeFileSync(path.join(dir, "page"), body);
    const put = await sh(`${config()}scp -F ${dir}/cfg ${opts} -i ${dir}/id ${dir}/page s1:/tmp/page`, remoteEnv());
    assert.equal(put.code, 0, put.stderr);
    // busybox httpd in the sandbox, on its own loopback only (no network: none).
    const started = await ssh("s1", "'mkdir -p /tmp/www && mv /tmp/page /tmp/www/page && httpd -p 127.0.0.1:8080 -h /tmp/www'");
    assert.equal(started.code, 0, started.stderr);
    const port = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, "127.0.0.1", () => {
        const p = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    await sh(config(), remoteEnv());
    const fwd = spawn("ssh", ["-F", `${dir}/cfg`, ...opts.split(" "), "-i", `${dir}/id`, "-N", "-o", "ExitOnForwardFailure=yes", "-L", `127.0.0.1:${port}:localhost:8080`, "s1"], {
      env: { ...process.env, ...remoteEnv() },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let fwdErr = "";
    fwd.stderr.on("data", (d) => (fwdErr += d));
    const get = () =>
      new Promise<{ status: number; text: string }>((resolve, reject) => {
        http
          .get(`http://127.0.0.1:${port}/page`, (res) => {
            let text = "";
            res.setEncoding("utf8");
            res.on("data", (c) => (text += c));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
          })
          .on("error", reject);
      });
    try {
      let got: { status: number; text: string } | undefined;
      for (let i = 0; i < 200 && !got && fwd.exitCode === null; i++) {
        got = await get().catch(() => undefined);
        if (!got) await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(got, `no answer through the forward: ${fwdErr}`);
      assert.equal(got.status, 200);
      assert.equal(got.text, body);
      // Two at once over the one SSH connection.
      const both = await Promise.all([get(), get()]);
      assert.deepEqual(both.map((b) => b.text === body), [true, true]);
    } finally {
      const gone = new Promise((r) => fwd.once("exit", r));
      fwd.kill("SIGTERM");
      await gone;
      await ssh("s1", "'killall httpd'");
    }
    const refused = await sh(`${config()}ssh -F ${dir}/cfg ${opts} -i ${dir}/id -W localhost:9 s1 < /dev/null`, remoteEnv());
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /open failed/);
  });

  it("reaches a microVM alike; a snapshot's restored copy has a host key of its own", async () => {
    const r = await request(d.url, "POST", "/v1/sandboxes", { key, json: { template: "busybox", backend: "vm", name: "vm1", resources: { memory: "192M" } } });
    assert.equal(r.status, 201, r.text);
    const id = r.json<{ id: string }>().id;
    const first = await ssh("vm1", "'echo ok; tty || true'");
    assert.equal(first.stdout, "ok\nnot a tty\n", first.stderr);
    const k0 = await hostKeyOf(id);
    const snap = await request(d.url, "POST", `/v1/sandboxes/${id}/snapshot`, { key, json: { name: "ssh-snap" } });
    assert.equal(snap.status, 201, snap.text);
    const restored = await request(d.url, "POST", "/v1/snapshots/ssh-snap/restore", { key, json: { name: "vm-copy" } });
    assert.equal(restored.status, 201, restored.text);
    const copy = restored.json<{ id: string }>().id;
    assert.notEqual(await hostKeyOf(copy), k0);
    const again = await ssh("vm-copy", "hostname");
    assert.equal(again.stdout, "vm-copy\n", again.stderr);
    assert.equal(await hostKeyOf(id), k0);
    for (const sb of [copy, id]) assert.equal((await request(d.url, "DELETE", `/v1/sandboxes/${sb}`, { key })).status, 204);
    assert.equal((await request(d.url, "DELETE", "/v1/snapshots/ssh-snap", { key })).status, 204);
  });
});
