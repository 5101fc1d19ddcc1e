// `corral shell` and `corral exec -it` under a real terminal: a tmux
// server of the test's own (its own socket) runs the CLI in a pane, the
// test types into it with send-keys, reads the screen with capture-pane
// and resizes the window, without a daemon (the state dir) and through
// one (over /v1/connect).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { freshState, type TestState } from "../helpers/state.js";
import { testDaemon } from "../helpers/daemon.js";
import { CLI } from "../helpers/cli.js";
import type { Daemon } from "../../src/server/daemon.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** A tmux server of its own, one window 80x24 running `command` through sh. */
class Tmux {
  readonly socket = `corral-test-${randomBytes(4).toString("hex")}`;

  constructor(
    command: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {
    this.run("new-session", "-d", "-s", "t", "-x", "80", "-y", "24", command);
  }

  run(...args: string[]): string {
    const r = spawnSync("tmux", ["-L", this.socket, ...args], { encoding: "utf8", env: { ...process.env, ...this.env } });
    if (r.status !== 0) throw new Error(`tmux ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  }

  screen(): string {
    return this.run("capture-pane", "-p", "-t", "t");
  }

  type(keys: string, ...more: string[]): void {
    this.run("send-keys", "-t", "t", "-l", keys);
    if (more.length) this.run("send-keys", "-t", "t", ...more);
  }

  /** Waits for `re` on the screen; its text when it fails. */
  async waitFor(re: RegExp, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = "";
    while (Date.now() < deadline) {
      last = this.screen();
      if (re.test(last)) return;
      await sleep(50);
    }
    throw new Error(`no ${re} on the screen within ${timeoutMs} ms:\n${last}`);
  }

  kill(): void {
    spawnSync("tmux", ["-L", this.socket, "kill-server"]);
  }
}

describe("corral shell under a real terminal (tmux)", () => {
  let t: TestState;
  let d: Daemon;
  let key: string;
  let dir: string;

  before(async () => {
    t = await freshState("cli-shell");
    d = await testDaemon(t);
    key = t.s.tenants.createKey("alice").key;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "corral-cli-shell-"));
  });
  after(async () => {
    fs.rmSync(dir, { recursive: true, force: true });
    await d?.close();
    await t?.close();
  });

  for (const through of ["the state dir", "a daemon"] as const) {
    it(`through ${through}: echo hi reads hi back, a resize is seen, Ctrl-C reaches the sandbox, the shell's exit status is corral's`, async () => {
      const local = through === "the state dir";
      // The sandbox belongs to the tenant the CLI acts as: the state dir's default one, or the key's.
      const name = local ? "shell-local" : "shell-remote";
      if (local) await t.s.create({ template: "busybox", name });
      else await t.s.create({ template: "busybox", name }, { tenant: "alice" });
      const status = path.join(dir, `${name}.status`);
      const env: NodeJS.ProcessEnv = local
        ? { CORRAL_API_URL: "", CORRAL_CGROUP_PARENT: t.cgroupParent }
        : { CORRAL_API_URL: d.url, CORRAL_API_KEY: key, CORRAL_STATE_DIR: "/nonexistent/corral" };
      const args = local ? ["--state-dir", t.stateDir, "shell", name] : ["shell", name];
      const tmux = new Tmux(`${quote(process.execPath)} ${quote(CLI)} ${args.map(quote).join(" ")}; echo $? > ${quote(status)}; sleep 30`, env);
      try {
        tmux.type("PS1='ready$ '", "Enter");
        await tmux.waitFor(/^ready\$ ?$/m); // (capture-pane drops trailing blanks)
        tmux.type("echo hi", "Enter");
        await tmux.waitFor(/^hi$/m);
        tmux.type("stty size", "Enter");
        await tmux.waitFor(/^24 80$/m);
        tmux.run("resize-window", "-t", "t", "-x", "100", "-y", "30");
        // The new size travels tmux → corral shell (SIGWINCH) → the agent: asked again until it has arrived.
        for (let k = 0; ; k++) {
          tmux.type("clear; stty size", "Enter");
          const seen = await tmux.waitFor(/^30 100$/m, 1000).then(() => true, () => false);
          if (seen) break;
          assert.ok(k < 20, "the terminal never took the new size");
        }
        // It says so once it runs as the foreground job (the typed line shows sleep""ing): no clock guesses when.
        tmux.type(`sh -c 'echo sleep""ing; exec sleep 100'`, "Enter");
        await tmux.waitFor(/^sleeping$/m);
        tmux.run("send-keys", "-t", "t", "C-c");
        tmux.type("echo after $?", "Enter");
        await tmux.waitFor(/^after 130$/m);
        tmux.type("exit 7", "Enter");
        for (let i = 0; i < 200 && !fs.existsSync(status); i++) await sleep(50);
        assert.equal(fs.readFileSync(status, "utf8").trim(), "7");
      } finally {
        tmux.kill();
      }
    });
  }

  it("exec -it runs a command on a terminal and gives its status; a missing sandbox is one line", async () => {
    await t.s.create({ template: "busybox", name: "exec-it" });
    const status = path.join(dir, "exec-it.status");
    const err = path.join(dir, "exec-it.err");
    const cli = `${quote(process.execPath)} ${quote(CLI)} --state-dir ${quote(t.stateDir)}`;
    const tmux = new Tmux(`${cli} exec -it exec-it -- sh -c 'tty; read l; echo got-$l; exit 4'; echo $? > ${quote(status)}; ${cli} shell nope 2> ${quote(err)}; echo $? >> ${quote(status)}; sleep 30`, {
      CORRAL_API_URL: "",
      CORRAL_CGROUP_PARENT: t.cgroupParent,
    });
    try {
      await tmux.waitFor(/^\/dev\/pts\/\d+$/m);
      tmux.type("x", "Enter");
      await tmux.waitFor(/^got-x$/m);
      for (let i = 0; i < 200 && fs.readFileSync(status, { encoding: "utf8", flag: "a+" }).split("\n").length < 3; i++) await sleep(50);
      assert.deepEqual(fs.readFileSync(status, "utf8").trim().split("\n"), ["4", "1"]);
      assert.equal(fs.readFileSync(err, "utf8").trim().split("\n").length, 1);
    } finally {
      tmux.kill();
    }
  });
});
