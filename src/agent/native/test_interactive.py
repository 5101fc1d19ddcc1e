#!/usr/bin/env python3
"""Tests of the agent's interactive ops (docs/protocol.md): exec with a
pty and resize, attach and the output ring, procs, signal/stdin by pid,
watch and rename.

Usage: python3 test_interactive.py /path/to/corral-agent [-k TEXT]

Runs the agent on the host with --socket and --root in a temporary
directory, as test_agent.py does, and reports each behaviour by name
("PASS name", "FAIL name: why"; the last line "N passed, N failed, N
skipped"). Commands run with the host's programs (sh, stty, tty, sleep).
Standard library only.
"""
import os
import queue
import re
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from agent_harness import TESTS, Conn, alive, encode, expect, recv_frame, run_tests, start_agent, stop, test  # noqa: E402


class Ctx:
    """The agent under test, its root tree, and one shared connection."""

    def __init__(self, binary, extra=()):
        self.tmp = tempfile.mkdtemp(prefix="corral-agent-interactive-")
        self.root = os.path.join(self.tmp, "root")
        self.outside = os.path.join(self.tmp, "outside")
        os.makedirs(self.root)
        os.makedirs(self.outside)
        self.sock = os.path.join(self.tmp, "agent.sock")
        self.agent = start_agent(binary, ["--socket", self.sock, "--root", self.root, *extra])
        self.conns = []
        self.c = self.conn()

    def conn(self):
        c = Conn(self.sock)
        self.conns.append(c)
        return c

    def path(self, rel):
        return os.path.join(self.root, rel)

    def close(self):
        for c in self.conns:
            c.close()
        stop(self.agent)
        subprocess.run(["rm", "-rf", self.tmp])


def read_until(c, i, pattern, timeout=10):
    """Output of stream i until `pattern` (bytes regex) matches it; the match."""
    out = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        expect(left > 0, f"no {pattern!r} within {timeout}s in {out[-300:]!r}")
        try:
            h, p, _ = c.get(i, left)
        except queue.Empty:
            raise AssertionError(f"no {pattern!r} within {timeout}s in {out[-300:]!r}") from None
        expect(h["ev"] in ("stdout", "stderr", "started"), f"{h} while waiting for {pattern!r} in {out[-300:]!r}")
        out += p
        m = re.search(pattern, out)
        if m:
            return m


def pty_shell(c, rows=24, cols=80, **kw):
    """A /bin/sh on a pty of rows x cols; its stream id, once it runs."""
    i = c.exec_start(argv=["/bin/sh"], pty={"rows": rows, "cols": cols}, env={"PS1": "$ ", "TERM": "dumb"}, **kw)
    h, _, _ = c.get(i)
    expect(h["ev"] == "started", h)
    return i, h["pid"]


def wait_child(pid, comm, timeout=20):
    """Until process pid has a child named comm (a loaded machine may take long to fork)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                kids = f.read().split()
        except OSError:
            kids = []
        for k in kids:
            try:
                with open(f"/proc/{k}/comm") as f:
                    if f.read().strip() == comm:
                        return int(k)
            except OSError:
                pass
        time.sleep(0.02)
    raise AssertionError(f"{pid} has no child {comm} after {timeout} s")


def barrier(c):
    """Returns once the agent has handled everything c sent before (it handles a connection's requests in order)."""
    h = c.request({"op": "stat", "path": "/"})
    expect(h["ev"] != "error", h)


def type_in(c, i, text):
    c.send({"op": "stdin", "id": i}, text.encode() if isinstance(text, str) else text)


def end_of(c, i, timeout=10):
    """The exit (or error) of stream i, skipping output."""
    deadline = time.monotonic() + timeout
    while True:
        h, _, _ = c.get(i, max(0.1, deadline - time.monotonic()))
        if h["ev"] in ("exit", "error"):
            return h


# ---------------------------------------------------------------- pty

@test("pty: the command runs on a terminal of the size asked, tty names it")
def _(x):
    r = x.c.run(argv=["sh", "-c", "tty; stty size; test -t 0 && test -t 1 && test -t 2 && echo all-tty"], pty={"rows": 33, "cols": 101})
    out = r["stdout"].decode()
    expect(r["exit"] and r["exit"]["code"] == 0, r)
    expect(re.search(r"^/dev/pts/\d+\r?$", out, re.M), out)
    expect("33 101" in out and "all-tty" in out, out)
    expect(r["stderr"] == b"", "a pty's output is all stdout")


@test("pty: the exit status arrives, output first")
def _(x):
    r = x.c.run(argv=["sh", "-c", "echo last words; exit 7"], pty={"rows": 24, "cols": 80})
    expect(r["exit"]["code"] == 7 and b"last words" in r["stdout"], r)


@test("pty: resize sets the size the shell sees and sends SIGWINCH")
def _(x):
    i, _ = pty_shell(x.c)
    type_in(x.c, i, "stty size\n")
    read_until(x.c, i, rb"24 80")
    h = x.c.request({"op": "resize", "target": i, "rows": 50, "cols": 132})
    expect(h["ev"] == "ok", h)
    type_in(x.c, i, "stty size\n")
    read_until(x.c, i, rb"50 132")
    type_in(x.c, i, "exit\n")
    expect(end_of(x.c, i)["code"] == 0)
    j = x.c.exec_start(argv=["sh", "-c", "trap 'echo got-winch' WINCH; echo ready; while :; do sleep 0.05; done"], pty={"rows": 5, "cols": 5})
    read_until(x.c, j, rb"ready")
    h = x.c.request({"op": "resize", "target": j, "rows": 6, "cols": 6})
    read_until(x.c, j, rb"got-winch")
    x.c.request({"op": "signal", "target": j, "signal": 9})
    end_of(x.c, j)


@test("pty: Ctrl-C interrupts the foreground command and the shell goes on")
def _(x):
    i, shell = pty_shell(x.c)
    type_in(x.c, i, "sleep 100\n")
    wait_child(shell, "sleep")
    time.sleep(0.1)  # the shell has made it the foreground group (tcsetpgrp) by now, even loaded
    type_in(x.c, i, b"\x03")
    # an interactive shell drops the rest of the line on SIGINT: ask on the next
    type_in(x.c, i, "echo after-sleep $?\n")
    read_until(x.c, i, rb"after-sleep 130")
    type_in(x.c, i, "echo still-here\n")
    read_until(x.c, i, rb"still-here\r?\n")
    type_in(x.c, i, "exit 3\n")
    expect(end_of(x.c, i)["code"] == 3)


@test("pty: 100 terminals at once")
def _(x):
    ids = [x.c.exec_start(argv=["sh", "-c", "read line; echo got-$line; stty size"], pty={"rows": 10 + k, "cols": 80}) for k in range(100)]
    for k, i in enumerate(ids):
        type_in(x.c, i, f"n{k}\n")
    for k, i in enumerate(ids):
        r = x.c.collect(i)
        out = r["stdout"].decode()
        expect(r["exit"] and r["exit"]["code"] == 0, (k, r["exit"], r["error"]))
        expect(f"got-n{k}" in out and f"{10 + k} 80" in out, (k, out))


@test("resize: ENOTTY without a pty, ESRCH for no exec, EINVAL for a bad size")
def _(x):
    i = x.c.exec_start(argv=["sleep", "5"])
    x.c.get(i)
    expect(x.c.request({"op": "resize", "target": i, "rows": 5, "cols": 5}).get("code") == "ENOTTY")
    x.c.send({"op": "signal", "id": x.c.new_id(), "target": i, "signal": 9})
    end_of(x.c, i)
    expect(x.c.request({"op": "resize", "target": 999999, "rows": 5, "cols": 5}).get("code") == "ESRCH")
    expect(x.c.request({"op": "resize", "pid": 999999, "rows": 5, "cols": 5}).get("code") == "ESRCH")
    expect(x.c.request({"op": "resize", "target": 1, "rows": 0, "cols": 5}).get("code") == "EINVAL")
    expect(x.c.request({"op": "resize", "target": 1, "rows": 70000, "cols": 5}).get("code") == "EINVAL")
    expect(x.c.request({"op": "resize", "target": 1}).get("code") == "EPROTO")
    r = x.c.run(argv=["true"], pty={"rows": "x", "cols": 1})
    expect(r["error"] and r["error"]["code"] == "EPROTO", r)


# ---------------------------------------------------------------- attach

@test("attach: a background command's output arrives exactly once, in order")
def _(x):
    c1 = x.conn()
    i = c1.exec_start(argv=["sh", "-c", "for i in $(seq 1 30); do echo $i; sleep 0.03; done"], keepAlive=True, detached=True)
    h, _, _ = c1.get(i)
    pid = h["pid"]
    time.sleep(0.4)
    c2 = x.conn()
    a = c2.new_id()
    c2.send({"op": "attach", "id": a, "pid": pid})
    r = c2.collect(a)
    expect(r["started"] and r["started"]["pid"] == pid and r["started"]["pty"] is False, r["started"])
    expect(r["stdout"].decode().split() == [str(n) for n in range(1, 31)], r["stdout"])
    expect(r["exit"] and r["exit"]["code"] == 0, r["exit"])
    # the detached starter got started and exit, and no output
    frames = []
    while True:
        h, p, _ = c1.get(i)
        frames.append(h["ev"])
        if h["ev"] == "exit":
            break
    expect(frames == ["exit"], frames)


@test("attach: the ring keeps the last 64 KiB of stdout and stderr")
def _(x):
    c1 = x.conn()
    script = "i=0; while [ $i -lt 3000 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done; echo to-stderr >&2; echo ready; : > \"$1\"; exec sleep 30"
    done = os.path.join(x.tmp, "ring-written")
    i = c1.exec_start(argv=["sh", "-c", script, "sh", done], keepAlive=True, detached=True)
    pid = c1.get(i)[0]["pid"]
    # all written (a loaded machine may take long), then a moment for the
    # agent to read the pipes into the ring
    deadline = time.monotonic() + 30
    while not os.path.exists(done) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    c2 = x.conn()
    a = c2.new_id()
    c2.send({"op": "attach", "id": a, "pid": pid})
    out, order = b"", []
    deadline = time.monotonic() + 10
    # across the two pipes the order is the order of the agent's reads
    while b"ready" not in out or "err:to-stderr\n" not in order:
        h, p, _ = c2.get(a, max(0.1, deadline - time.monotonic()))
        if h["ev"] == "stdout":
            out += p
            order.append("out")
        elif h["ev"] == "stderr":
            order.append("err:" + p.decode())
    # 64 KiB less the 4-byte header of each chunk kept (and what came live:
    # nothing), less up to 4 bytes when making room dropped a whole record
    # whose header was more than the room needed (ring_push)
    kept = len(out) + len("to-stderr\n") + 4 * len(order)
    expect(64 * 1024 - 4 <= kept <= 64 * 1024, (len(out), len(order)))
    expect(b"line-2999-" in out and b"line-0-" not in out, out[:100])
    c2.send({"op": "signal", "id": c2.new_id(), "pid": pid, "signal": 9})
    expect(end_of(c2, a)["signal"] == 9)


@test("attach: input and signals through the attach stream; end stops the output")
def _(x):
    c1 = x.conn()
    i = c1.exec_start(argv=["sh", "-c", "while read l; do echo echo-$l; done"], keepAlive=True, stdin=True, detached=True)
    pid = c1.get(i)[0]["pid"]
    c2 = x.conn()
    a = c2.new_id()
    c2.send({"op": "attach", "id": a, "pid": pid})
    expect(c2.get(a)[0]["ev"] == "started")
    type_in(c2, a, "one\n")
    read_until(c2, a, rb"echo-one\n")
    c2.send({"op": "stdin", "id": c2.new_id(), "pid": pid}, b"two\n")
    read_until(c2, a, rb"echo-two\n")
    c3 = x.conn()
    b = c3.new_id()
    c3.send({"op": "attach", "id": b, "pid": pid})
    expect(c3.get(b)[0]["ev"] == "started")
    read_until(c3, b, rb"echo-two\n")  # the replay
    c3.send({"op": "end", "id": b})
    expect(c3.get(b)[0]["ev"] == "ok")
    c1.send({"op": "stdin", "id": i}, b"three\n")
    time.sleep(0.3)
    expect(c3._q(b).empty(), "output after end")
    h = c3.request({"op": "signal", "pid": pid, "signal": 15})
    expect(h["ev"] == "ok", h)
    expect(end_of(c1, i)["signal"] == 15)


@test("attach: a keepAlive exec's window holds its attach streams too; credit only by the starter's id")
def _(x):
    # the window is the starter's stream's (docs/protocol.md, credit): a full
    # window stops the pipes, so an attach stream waits with the starter
    win = 100000
    c1 = x.conn()
    i = c1.exec_start(argv=["sh", "-c", "head -c 1000000 /dev/zero; echo done >&2"], keepAlive=True, window=win)
    h = c1.get(i)[0]
    expect(h["ev"] == "started" and h.get("window") == win, h)
    c2 = x.conn()
    a = c2.new_id()
    c2.send({"op": "attach", "id": a, "pid": h["pid"]})
    expect("window" not in c2.get(a)[0], "attach has no window")

    def drain(c, sid, seconds):
        n, end, last = 0, time.monotonic() + seconds, None
        while True:
            try:
                h, p, _ = c.get(sid, max(0.05, end - time.monotonic()))
            except queue.Empty:
                return n, last
            if h["ev"] in ("stdout", "stderr"):
                n += len(p)
            else:
                return n, h
    got1, _ = drain(c1, i, 0.5)
    expect(got1 == win, got1)
    # a credit under the attach stream's id is not the starter's: nothing moves
    c2.send({"op": "credit", "id": a, "bytes": win})
    expect(drain(c1, i, 0.3)[0] == 0, "credit by an attach id moved the window")
    total, last = got1, None
    while last is None:
        c1.send({"op": "credit", "id": i, "bytes": win})
        n, last = drain(c1, i, 0.5)
        total += n
    expect(last["ev"] == "exit" and total == 1000000 + len("done\n"), (last, total))
    seen, end2 = drain(c2, a, 5)
    expect(end2 and end2["ev"] == "exit" and 0 < seen <= total, (seen, end2))


@test("attach: ESRCH for a pid the agent did not start, EPROTO without one")
def _(x):
    expect(x.c.request({"op": "attach", "pid": os.getpid()}).get("code") == "ESRCH")
    expect(x.c.request({"op": "attach"}).get("code") == "EPROTO")
    expect(x.c.request({"op": "attach", "pid": -3}).get("code") == "EPROTO")


@test("attach: a keepAlive pty outlives its connection and takes input from the next")
def _(x):
    c1 = x.conn()
    i, pid = pty_shell(c1, keepAlive=True)
    type_in(c1, i, "echo first\n")
    read_until(c1, i, rb"first\r\n")
    c1.close()
    time.sleep(0.2)
    expect(alive(pid), "the shell died with its connection")
    c2 = x.conn()
    a = c2.new_id()
    c2.send({"op": "attach", "id": a, "pid": pid})
    read_until(c2, a, rb"first\r\n")
    type_in(c2, a, "echo second\n")
    read_until(c2, a, rb"second\r\n")
    h = c2.request({"op": "resize", "pid": pid, "rows": 7, "cols": 9})
    expect(h["ev"] == "ok", h)
    type_in(c2, a, "stty size; exit 5\n")
    read_until(c2, a, rb"7 9")
    expect(end_of(c2, a)["code"] == 5)


@test("attach: a slow attached reader pauses the command; a detached one nobody reads runs on")
def _(x):
    c1 = x.conn()
    i = c1.exec_start(argv=["sh", "-c", "head -c 50000000 /dev/zero; echo done >&2"], keepAlive=True, detached=True)
    pid = c1.get(i)[0]["pid"]
    h = end_of(c1, i, timeout=60)
    expect(h["ev"] == "exit" and h["code"] == 0, h)
    # attached over a socket that is not read: the command blocks
    c2 = x.conn()
    j = c2.exec_start(argv=["sh", "-c", "head -c 50000000 /dev/zero"], keepAlive=True, detached=True)
    pid = c2.get(j)[0]["pid"]
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.connect(x.sock)
    raw.sendall(encode({"op": "attach", "id": 1, "pid": pid}))
    time.sleep(1.0)
    expect(alive(pid), "the command did not wait for its attached reader")
    raw.close()
    expect(end_of(c2, j, timeout=60)["code"] == 0)


@test("flow: one stream paused stops its command; the connection's others go on")
def _(x):
    c = x.conn()
    big = c.exec_start(argv=["sh", "-c", "i=0; while [ $i -lt 200000 ]; do echo line-$i; i=$((i+1)); done"])
    c.get(big)  # started
    c.send({"op": "flow", "id": big, "pause": True})
    barrier(c)
    # what was on its way before the pause (socket buffers): read until quiet
    while True:
        try:
            c.get(big, 0.5)
        except queue.Empty:
            break
    time.sleep(0.5)
    expect(c._q(big).empty(), "output of a paused stream")
    r = c.run(argv=["echo", "other"])  # the same connection serves the others
    expect(r["stdout"] == b"other\n", r)
    c.send({"op": "flow", "id": big, "pause": False})
    expect(end_of(c, big, timeout=60)["code"] == 0)
    # a watch paused: its events wait in the kernel
    d = x.path("flowdir")
    os.makedirs(d)
    w, _ = watch(c, "/flowdir")
    c.send({"op": "flow", "id": w, "pause": True})
    barrier(c)
    open(os.path.join(d, "f"), "w").close()
    time.sleep(0.3)
    expect(c._q(w).empty(), "event of a paused watch")
    c.send({"op": "flow", "id": w, "pause": False})
    expect(c.get(w)[0].get("name") == "f")
    expect(c.request({"op": "flow", "pause": "yes"}).get("code") == "EPROTO")


# ---------------------------------------------------------------- procs

@test("procs: running execs with argv, cwd, tag and pty")
def _(x):
    os.makedirs(x.path("work"), exist_ok=True)
    c1 = x.conn()
    i = c1.exec_start(argv=["sleep", "30"], cwd="/tmp", tag="my-tag", keepAlive=True)
    pid = c1.get(i)[0]["pid"]
    j, ppid = pty_shell(c1)
    k = c1.new_id()
    c1.send({"op": "procs", "id": k})
    entries = []
    while True:
        h, _, _ = c1.get(k)
        if h["ev"] != "entry":
            break
        entries.append(h)
    expect(h["ev"] == "end" and h["count"] == len(entries), h)
    by = {e["pid"]: e for e in entries}
    e = by.get(pid)
    expect(e and e["argv"] == ["sleep", "30"] and e["cwd"] == "/tmp" and e["tag"] == "my-tag" and e["keepAlive"] and not e["pty"], e)
    e = by.get(ppid)
    expect(e and e["pty"] and e["tag"] is None and e["truncated"] is False, e)
    for p in (pid, ppid):
        c1.request({"op": "signal", "pid": p, "signal": 9})
    end_of(c1, i)
    end_of(c1, j)
    long = x.c.request({"op": "procs"})
    expect(long["ev"] in ("entry", "end"), long)


@test("procs: an argv over 4 KiB is cut and says so")
def _(x):
    c1 = x.conn()
    i = c1.exec_start(argv=["sh", "-c", "sleep 30", *(["a" * 1000] * 6)])
    pid = c1.get(i)[0]["pid"]
    k = c1.new_id()
    c1.send({"op": "procs", "id": k})
    found = None
    while True:
        h, _, _ = c1.get(k)
        if h["ev"] != "entry":
            break
        if h["pid"] == pid:
            found = h
    expect(found and found["truncated"] and len(found["argv"]) < 9 and sum(len(a) + 1 for a in found["argv"]) <= 4096, found)
    c1.close()


# ---------------------------------------------------------------- watch

def watch(c, path, recursive=False):
    i = c.new_id()
    c.send({"op": "watch", "id": i, "path": path, "recursive": recursive})
    h, _, _ = c.get(i)
    return i, h


def events_until(c, i, want, timeout=5):
    """fsevents of watch i until one equals `want` (type, name)."""
    got = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        expect(left > 0, f"no {want} within {timeout}s, got {got}")
        h, _, _ = c.get(i, left)
        expect(h["ev"] == "fsevent", h)
        got.append((h["type"], h.get("name")))
        if got[-1] == want:
            return got


@test("watch: create, write, chmod, rename and remove, with names")
def _(x):
    d = x.path("w1")
    os.makedirs(d)
    i, h = watch(x.c, "/w1")
    expect(h["ev"] == "watching", h)
    with open(os.path.join(d, "a.txt"), "w") as f:
        f.write("x")
    events_until(x.c, i, ("create", "a.txt"))
    events_until(x.c, i, ("write", "a.txt"))
    os.chmod(os.path.join(d, "a.txt"), 0o600)
    events_until(x.c, i, ("chmod", "a.txt"))
    os.rename(os.path.join(d, "a.txt"), os.path.join(d, "b.txt"))
    got = events_until(x.c, i, ("create", "b.txt"))
    expect(("rename", "a.txt") in got, got)
    os.unlink(os.path.join(d, "b.txt"))
    events_until(x.c, i, ("remove", "b.txt"))
    os.mkdir(os.path.join(d, "sub"))
    h, _, _ = x.c.get(i)
    expect(h["type"] == "create" and h["name"] == "sub" and h["dir"] is True, h)
    x.c.send({"op": "end", "id": i})
    expect(x.c.get(i)[0]["ev"] == "end")


@test("watch: recursive follows new directories; not recursive does not")
def _(x):
    d = x.path("w2")
    os.makedirs(os.path.join(d, "old", "deep"))
    flat, _ = watch(x.c, "/w2")
    rec, h = watch(x.c, "/w2", recursive=True)
    expect(h["ev"] == "watching", h)
    with open(os.path.join(d, "old", "deep", "f"), "w"):
        pass
    events_until(x.c, rec, ("create", "old/deep/f"))
    os.makedirs(os.path.join(d, "new"))
    events_until(x.c, rec, ("create", "new"))
    with open(os.path.join(d, "new", "g"), "w"):
        pass
    events_until(x.c, rec, ("create", "new/g"))
    os.rename(os.path.join(d, "new"), os.path.join(d, "moved"))
    events_until(x.c, rec, ("create", "moved"))
    with open(os.path.join(d, "moved", "h"), "w"):
        pass
    events_until(x.c, rec, ("create", "moved/h"))
    got = events_until(x.c, flat, ("create", "moved"))
    expect(all("/" not in (n or "") for _, n in got), got)
    for i in (flat, rec):
        x.c.send({"op": "end", "id": i})
        while x.c.get(i)[0]["ev"] != "end":
            pass


@test("watch: the watched directory removed ends the stream")
def _(x):
    d = x.path("w3")
    os.makedirs(d)
    i, _ = watch(x.c, "/w3")
    os.rmdir(d)
    while True:
        h, _, _ = x.c.get(i)
        if h["ev"] != "fsevent":
            break
    expect(h["ev"] == "end", h)


@test("watch: ENOENT, ENOTDIR, and paths stay inside the root")
def _(x):
    expect(watch(x.c, "/nope")[1].get("code") == "ENOENT")
    with open(x.path("plain"), "w"):
        pass
    expect(watch(x.c, "/plain")[1].get("code") == "ENOTDIR")
    expect(watch(x.c, "relative")[1].get("code") == "EINVAL")
    os.symlink(x.outside, x.path("out-link"))
    # the absolute symlink is taken inside the root, where it leads nowhere
    expect(watch(x.c, "/out-link")[1].get("code") == "ENOENT")
    i, h = watch(x.c, "/../../..")
    expect(h["ev"] == "watching", h)  # the root itself
    x.c.send({"op": "end", "id": i})
    x.c.get(i)


@test("watch: a flood on a stalled connection ends in an overflow event, memory bounded")
def _(x):
    d = x.path("flood")
    os.makedirs(d)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(x.sock)
    s.sendall(encode({"op": "watch", "id": 1, "path": "/flood"}))
    h, _ = recv_frame(s)
    expect(h["ev"] == "watching", h)
    for n in range(100000):
        os.close(os.open(os.path.join(d, f"f{n}"), os.O_CREAT | os.O_WRONLY, 0o644))
    rss = 0
    with open(f"/proc/{x.agent.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    count, overflow = 0, False
    while not overflow:
        h, _ = recv_frame(s, timeout=10)
        if h.get("type") == "overflow":
            overflow = True
        else:
            count += 1
    s.close()
    expect(overflow and count < 100000, count)
    expect(rss < 8 * 1024, f"agent VmRSS {rss} KiB during the flood")
    print(f"  ({count} events before the overflow, agent VmRSS {rss} KiB)", flush=True)
    subprocess.run(["rm", "-rf", d])


# ---------------------------------------------------------------- rename

@test("rename: moves a file, refuses to replace with noReplace, stays inside the root")
def _(x):
    os.makedirs(x.path("r/sub"))
    with open(x.path("r/a"), "w") as f:
        f.write("A")
    with open(x.path("r/b"), "w") as f:
        f.write("B")
    h = x.c.request({"op": "rename", "path": "/r/a", "to": "/r/sub/a2"})
    expect(h["ev"] == "ok" and open(x.path("r/sub/a2")).read() == "A", h)
    h = x.c.request({"op": "rename", "path": "/r/sub/a2", "to": "/r/b", "noReplace": True})
    expect(h.get("code") == "EEXIST", h)
    h = x.c.request({"op": "rename", "path": "/r/sub/a2", "to": "/r/b"})
    expect(h["ev"] == "ok" and open(x.path("r/b")).read() == "A", h)
    h = x.c.request({"op": "rename", "path": "/r/b", "to": "/../../outside/stolen"})
    expect(h.get("code") == "ENOENT" and not os.path.exists(os.path.join(x.outside, "stolen")), h)
    h = x.c.request({"op": "rename", "path": "/r/b", "to": "/r/../../../b-at-root"})
    expect(h["ev"] == "ok" and os.path.exists(x.path("b-at-root")), h)
    os.symlink("/r/sub", x.path("r/link"))
    h = x.c.request({"op": "rename", "path": "/r/link", "to": "/r/link2"})
    expect(h["ev"] == "ok" and os.path.islink(x.path("r/link2")), "a symlink is renamed, not its target")
    expect(x.c.request({"op": "rename", "path": "/", "to": "/x"}).get("code") == "EBUSY")
    expect(x.c.request({"op": "rename", "path": "/nope", "to": "/x"}).get("code") == "ENOENT")
    expect(x.c.request({"op": "rename", "path": "/r/..", "to": "/x"}).get("code") == "EINVAL")
    expect(x.c.request({"op": "rename", "path": "/r/sub"}).get("code") == "EPROTO")


@test("the agent is still well: no leftover processes or fds")
def _(x):
    time.sleep(0.3)
    h = x.c.request({"op": "procs"})
    expect(h["ev"] == "end" and h["count"] == 0, h)
    fds = os.listdir(f"/proc/{x.agent.pid}/fd")
    # stdio, epoll, signalfd, listener, the root fd and one per open connection
    expect(len(fds) <= 6 + len(x.conns), (len(fds), [os.readlink(f"/proc/{x.agent.pid}/fd/{f}") for f in fds]))


def main():
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        print(__doc__)
        sys.exit(2)
    select = args[args.index("-k") + 1] if "-k" in args[:-1] else None
    # --resolver walk: the agent resolves paths as it does without openat2 (gVisor)
    extra = ["--resolver", args[args.index("--resolver") + 1]] if "--resolver" in args[:-1] else []
    ctx = Ctx(os.path.abspath(args[0]), extra)
    try:
        failed = run_tests(ctx, TESTS, select)
    finally:
        ctx.close()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
