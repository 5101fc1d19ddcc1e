import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { E2bProcess, MAX_SUBSCRIBERS, ProcessTable, SUBSCRIBER_QUEUE_BYTES, endInfo } from "./processes.js";

const proc = () => new E2bProcess("sb", { cmd: "/bin/bash", args: ["-l", "-c", "x"], envs: {}, cwd: undefined }, undefined, false);

describe("E2B processes", () => {
  it("end as Go's ProcessState describes them", () => {
    assert.deepEqual(endInfo({ exitCode: 0, signal: null }), { exitCode: 0, exited: true, status: "exit status 0" });
    assert.deepEqual(endInfo({ exitCode: 3, signal: null }), { exitCode: 3, exited: true, status: "exit status 3", error: "exit status 3" });
    assert.deepEqual(endInfo({ exitCode: null, signal: 9 }), { exitCode: -1, exited: false, status: "signal: killed", error: "signal: killed" });
  });

  it("give each subscriber the output from when it subscribed, then the end", async () => {
    const p = proc();
    const a = p.subscribe()!;
    p.output("stdout", Buffer.from("one"));
    const b = p.subscribe()!;
    p.output("stderr", Buffer.from("two"));
    p.finish({ kind: "end", end: endInfo({ exitCode: 0, signal: null }) });
    const kinds = async (s: typeof a) => {
      const out: string[] = [];
      for (;;) {
        const e = await s.next(1000);
        if (e === undefined || e === "idle") break;
        out.push(e.kind === "end" ? "end" : `${e.kind}:${e.kind === "stdout" || e.kind === "stderr" ? e.data.toString() : ""}`);
        if (e.kind === "end") break;
      }
      return out;
    };
    assert.deepEqual(await kinds(a), ["stdout:one", "stderr:two", "end"]);
    assert.deepEqual(await kinds(b), ["stderr:two", "end"]);
  });

  it("hold the command (a pending output callback) while a subscriber has more than its bound waiting", async () => {
    const p = proc();
    const s = p.subscribe()!;
    assert.equal(p.output("stdout", Buffer.alloc(SUBSCRIBER_QUEUE_BYTES)), undefined);
    const held = p.output("stdout", Buffer.alloc(1));
    assert.ok(held instanceof Promise);
    let released = false;
    void held.then(() => (released = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(released, false);
    await s.next(1000);
    await held;
    assert.equal(released, true);
  });

  it("release a held command when its subscriber goes, and drop output nobody follows", async () => {
    const p = proc();
    const s = p.subscribe()!;
    p.output("stdout", Buffer.alloc(SUBSCRIBER_QUEUE_BYTES + 1));
    const held = p.output("stdout", Buffer.alloc(1));
    s.close();
    await held;
    assert.equal(p.output("stdout", Buffer.alloc(SUBSCRIBER_QUEUE_BYTES * 2)), undefined);
    assert.equal(await s.next(10), undefined);
  });

  it("end a stream at once that subscribes after the command ended", async () => {
    const p = proc();
    p.finish({ kind: "end", end: endInfo({ exitCode: 0, signal: null }) });
    const e = await p.subscribe()!.next(1000);
    assert.ok(e !== undefined && e !== "idle" && e.kind === "end");
  });

  it("say a quiet stream is idle (a keepalive is due)", async () => {
    const s = proc().subscribe()!;
    assert.equal(await s.next(20), "idle");
  });

  it("let a bounded number of streams follow one command", () => {
    const p = proc();
    const subs = Array.from({ length: MAX_SUBSCRIBERS }, () => p.subscribe());
    assert.ok(subs.every((s) => s !== undefined));
    assert.equal(p.subscribe(), undefined);
    subs[0]!.close();
    assert.ok(p.subscribe());
  });
});

describe("E2B process table", () => {
  it("lets a bounded number of Connect streams join one command, and ends them when the daemon stops", () => {
    const table = new ProcessTable();
    const stopped: unknown[] = [];
    const slots = Array.from({ length: MAX_SUBSCRIBERS }, () => table.joinSlot("sb", 7, (e) => stopped.push(e)));
    assert.ok(slots.every((s) => s !== undefined));
    assert.equal(table.joinSlot("sb", 7, () => {}), undefined);
    assert.ok(table.joinSlot("sb", 8, () => {}), "another command has its own bound");
    slots[0]!();
    slots[0]!(); // released once, however often called
    const again = table.joinSlot("sb", 7, (e) => stopped.push(e));
    assert.ok(again);
    assert.equal(table.joinSlot("sb", 7, () => {}), undefined);
    table.shutdown("stopping");
    assert.equal(stopped.length, MAX_SUBSCRIBERS);
  });
});
