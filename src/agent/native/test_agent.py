#!/usr/bin/env python3
"""Protocol tests for the native corral agent (docs/protocol.md).

Usage: python3 test_agent.py /path/to/corral-agent [--skip-rss] [-k TEXT]

Runs the agent with --socket in a temporary directory and --root pointing at
a temporary tree, speaks the framed protocol to it, and runs one test per
behaviour, in file order: each prints "PASS <name>", "FAIL <name>: <why>" or
"SKIP <name>: <why>", the last line says "N passed, N failed, N skipped",
and the exit status is non-zero if any test failed. -k runs only the tests
whose name holds TEXT. The tests share one agent and one connection; each
makes the files it needs under a path of its own. The last ones (idle
memory, fd leaks, SIGTERM) look at what all the others left.

--skip-rss skips the memory-bound tests (use it for sanitizer builds, whose
allocator keeps freed memory); they skip by themselves for a dynamically
linked binary, whose shared libc pages alone exceed the 1 MiB bound meant
for the static musl build. The --vsock tests skip when the kernel has no
AF_VSOCK, and the vsock round trip (a client on CID 1) runs only where the
vsock_loopback transport exists.
Standard library only.
"""
import queue
import hashlib
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from agent_harness import (  # noqa: E402
    CHUNK, TESTS, Conn, Skip, alive, encode, exec_on, expect, fd_flags, fd_kinds, is_dynamic, recv_frame,
    run_tests, socket_fds, start_agent, stop, test, vmrss_kib, vsock_loopback_unavailable, vsock_unavailable,
    zombie_children)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Ctx:
    """The agent under test, its root tree, and one shared connection."""

    def __init__(self, binary, skip_rss, extra=()):
        self.binary = binary
        self.extra = list(extra)
        self.skip_rss = skip_rss
        self.tmp = tempfile.mkdtemp(prefix="corral-agent-test-")
        self.root = os.path.join(self.tmp, "root")
        self.outside = os.path.join(self.tmp, "outside")
        self.sock = os.path.join(self.tmp, "run", "corral", "agent.sock")  # parent dirs made by the agent
        os.makedirs(os.path.join(self.root, "etc"))
        os.makedirs(self.outside)
        self.put("etc/passwd", "FAKE PASSWD\n")
        self.put("etc/shadow", "FAKE SHADOW\n")
        with open(os.path.join(self.outside, "keep.txt"), "w") as f:
            f.write("must survive\n")
        os.symlink("/etc/shadow", os.path.join(self.root, "evil"))
        os.symlink("../../../../../../../../etc/passwd", os.path.join(self.root, "evil-rel"))
        self.agent = start_agent(binary, ["--socket", self.sock, "--root", self.root, *extra])
        self.apid = self.agent.pid
        print(f"agent pid {self.apid}", flush=True)
        self.conns = []
        self.c = self.conn()

    def conn(self):
        c = Conn(self.sock)
        self.conns.append(c)
        return c

    def put(self, rel, text):
        """Writes a file under the root directly (not through the agent)."""
        p = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
        return p

    def at(self, rel):
        return os.path.join(self.root, rel)

    def needs_rss_bounds(self):
        if self.skip_rss:
            raise Skip("memory bounds hold for the static musl build only (--skip-rss, or a dynamic binary)")

    def close(self):
        for c in self.conns:
            c.close()
        stop(self.agent)
        subprocess.run(["rm", "-rf", self.tmp])


def until(pred, timeout=10):
    """Whether pred() holds within timeout seconds, polling (what a loaded machine delays, not how fast)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def error_code(r):
    """The code of an exec's or a request's error, or None."""
    e = r.get("error") if "frames" in r else (r if r.get("ev") == "error" else None)
    return e and e.get("code")


# ---------------------------------------------------------------- hello and exec

@test("hello")
def _(x):
    h = x.c.request({"op": "hello"})
    expect(h.get("ev") == "hello" and h.get("version") == 1 and h.get("agent", "").startswith("corral-agent/")
           and h.get("pid") == x.apid, h)


@test("exec argv")
def _(x):
    r = x.c.run(argv=["echo", "hi", "there"])
    expect(r["started"] and r["started"]["pid"] > 0 and r["stdout"] == b"hi there\n"
           and r["exit"] == {"ev": "exit", "id": r["id"], "code": 0, "signal": None, "timedOut": False}, r)


@test("exec cmd")
def _(x):
    r = x.c.run(cmd="echo from-sh; echo err >&2")
    expect(r["stdout"] == b"from-sh\n" and r["stderr"] == b"err\n" and r["exit"]["code"] == 0, r)


@test("exec absolute argv[0]")
def _(x):
    r = x.c.run(argv=["/bin/echo", "abs"])
    expect(r["stdout"] == b"abs\n", r)


@test("a command ignores and blocks no signal, whatever the agent ignores")
def _(x):
    sock = os.path.join(x.tmp, "sig.sock")

    def ignore_some():
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    p = start_agent(x.binary, ["--socket", sock, "--root", x.root], preexec_fn=ignore_some)
    try:
        with open(f"/proc/{p.pid}/status") as f:
            ign = [line for line in f if line.startswith("SigIgn:")]
        expect(int(ign[0].split()[1], 16) & ((1 << 0) | (1 << 9)) == (1 << 0) | (1 << 9),
               f"that agent does not ignore SIGHUP and SIGUSR1: {ign}")
        c = Conn(sock)
        out = c.run(cmd="grep -E '^Sig(Ign|Blk):' /proc/self/status")["stdout"].decode()
        c.close()
        expect(out == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n", out)
    finally:
        stop(p)


@test("exec env defaults and cwd")
def _(x):
    r = x.c.run(argv=["sh", "-c", 'echo "$FOO|$HOME|$PATH|$(pwd)|${BAR-unset}"'], env={"FOO": "bär \"q\""}, cwd=x.tmp)
    want = f'bär "q"|/root|{DEFAULT_PATH}|{x.tmp}|unset\n'.encode()
    expect(r["stdout"] == want, (r["stdout"], want))


@test("exec env overrides")
def _(x):
    r = x.c.run(argv=["sh", "-c", 'echo "$HOME|$PATH"'], env={"HOME": "/h", "PATH": "/bin:/usr/bin"})
    expect(r["stdout"] == b"/h|/bin:/usr/bin\n", r)


@test("exec env: a repeated key, the last one wins")
def _(x):
    i = x.c.new_id()
    x.c.send(b'{"op":"exec","id":%d,"argv":["sh","-c","echo $K"],"env":{"K":"first","K":"last"}}' % i)
    r = x.c.collect(i)
    expect(r["stdout"] == b"last\n", r)


@test("exec PATH search uses the request env")
def _(x):
    r = x.c.run(argv=["echo", "x"], env={"PATH": "/nonexistent"})
    expect(error_code(r) == "ENOENT", r)


@test("exec bad cwd -> ENOENT, the message names the cwd and why")
def _(x):
    r = x.c.run(argv=["true"], cwd="/nonexistent-dir-xyz")
    expect(error_code(r) == "ENOENT" and r["started"] is None, r)
    expect(r["error"]["message"] == "cannot change directory to /nonexistent-dir-xyz: No such file or directory", r["error"])


@test("exec relative cwd -> EINVAL")
def _(x):
    r = x.c.run(argv=["true"], cwd="relative")
    expect(error_code(r) == "EINVAL", r)


@test("exec without stdin gets /dev/null")
def _(x):
    r = x.c.run(argv=["sh", "-c", "cat; echo done"])
    expect(r["stdout"] == b"done\n", r)


# ---------------------------------------------------------------- output and exit

@test("stdout streamed before exit")
def _(x):
    r = x.c.run(argv=["sh", "-c", "echo a; sleep 0.3; echo b"])
    outs = [(p, t) for h, p, t in r["frames"] if h["ev"] == "stdout"]
    t_exit = r["frames"][-1][2]
    expect(outs and outs[0][0] == b"a\n" and r["stdout"] == b"a\nb\n" and t_exit - outs[0][1] >= 0.25,
           [(p, round(t_exit - t, 3)) for p, t in outs])


@test("started sent while a command runs")
def _(x):
    # "started" is held at most START_HOLD_MS for a command that may end at
    # once: one that runs on has it long before its exit.
    r = x.c.run(argv=["sleep", "0.3"])
    t_start = [t for h, _, t in r["frames"] if h["ev"] == "started"]
    expect(t_start and r["frames"][-1][2] - t_start[0] >= 0.25, [(h["ev"], round(t, 3)) for h, _, t in r["frames"]])


@test("a quick command: started, then exit")
def _(x):
    r = x.c.run(argv=["true"])
    expect([h["ev"] for h, _, _ in r["frames"]] == ["started", "exit"] and r["started"]["pid"] > 0, r["frames"])


@test("stdout and stderr separated")
def _(x):
    r = x.c.run(argv=["sh", "-c", "echo o1; echo e1 >&2; sleep 0.1; echo o2; echo e2 >&2"])
    expect(r["stdout"] == b"o1\no2\n" and r["stderr"] == b"e1\ne2\n", r)


@test("big output complete, chunks <= 64 KiB")
def _(x):
    r = x.c.run(argv=["sh", "-c", "head -c 3000000 /dev/zero"])
    sizes = [len(p) for h, p, _ in r["frames"] if h["ev"] == "stdout"]
    expect(len(r["stdout"]) == 3000000 and max(sizes) <= CHUNK and r["exit"]["code"] == 0, (len(r["stdout"]), max(sizes)))


@test("exec window: output stops at the window until credited, this exec only")
def _(x):
    win = 100000
    i = x.c.exec_start(argv=["sh", "-c", "head -c 1000000 /dev/zero"], window=win)
    h, _, _ = x.c.get(i)
    expect(h["ev"] == "started" and h.get("window") == win, h)
    got = 0
    def drain(seconds):
        nonlocal got
        end = time.monotonic() + seconds
        while True:
            try:
                h, p, _ = x.c.get(i, max(0.05, end - time.monotonic()))
            except queue.Empty:
                return None
            if h["ev"] == "stdout":
                got += len(p)
            else:
                return h
    expect(drain(0.5) is None and got == win, got)
    # another command on the same connection is not held up by this one
    r = x.c.run(argv=["echo", "free"])
    expect(r["stdout"] == b"free\n", r)
    # a credit acknowledges bytes received: the next window goes out
    x.c.send({"op": "credit", "id": i, "bytes": win})
    expect(drain(0.5) is None and got == 2 * win, got)
    while got < 1000000:
        x.c.send({"op": "credit", "id": i, "bytes": win})
        last = drain(0.5)
    last = last or drain(10)
    expect(last and last["ev"] == "exit" and got == 1000000, (last, got))


@test("exec window: stdin taken by the child is acknowledged with credit")
def _(x):
    i = x.c.exec_start(argv=["sh", "-c", "cat > /dev/null"], stdin=True, window=65536)
    expect(x.c.get(i)[0]["ev"] == "started")
    x.c.send({"op": "stdin", "id": i}, b"x" * 200000)
    acked = 0
    while acked < 200000:
        h, _, _ = x.c.get(i, 5)
        expect(h["ev"] == "credit", h)
        acked += h["bytes"]
    expect(acked == 200000, acked)
    x.c.send({"op": "stdin", "id": i, "eof": True})
    expect(x.c.collect(i)["exit"]["code"] == 0)


@test("exec window over 1 MiB is EINVAL")
def _(x):
    r = x.c.run(argv=["true"], window=2 * 1024 * 1024)
    expect(r["error"] and r["error"]["code"] == "EINVAL", r)


@test("exit code")
def _(x):
    r = x.c.run(argv=["sh", "-c", "exit 3"])
    expect(r["exit"]["code"] == 3 and r["exit"]["signal"] is None, r["exit"])


@test("exit signal")
def _(x):
    r = x.c.run(argv=["sh", "-c", "kill -9 $$"])
    expect(r["exit"]["code"] is None and r["exit"]["signal"] == 9 and r["exit"]["timedOut"] is False, r["exit"])


@test("timeout kills the group")
def _(x):
    t0 = time.monotonic()
    r = x.c.run(argv=["sleep", "5"], timeoutMs=300)
    dt = time.monotonic() - t0
    expect(r["exit"]["timedOut"] is True and r["exit"]["signal"] == 9 and r["exit"]["code"] is None
           and 0.25 <= dt, (r["exit"], dt))  # timedOut and 9: ended by the timeout, not on its own


@test("timeout with a grandchild")
def _(x):
    r = x.c.run(argv=["sh", "-c", "sleep 5 & sleep 5; echo never"], timeoutMs=200)
    expect(r["exit"]["timedOut"] is True and r["stdout"] == b"", r["exit"])


# ---------------------------------------------------------------- stdin

@test("stdin round trip 1 MiB through cat")
def _(x):
    data = os.urandom(1 << 20)
    i = x.c.exec_start(argv=["cat"], stdin=True)
    for o in range(0, len(data), CHUNK):
        x.c.send({"op": "stdin", "id": i}, data[o:o + CHUNK])
    x.c.send({"op": "stdin", "id": i, "eof": True})
    r = x.c.collect(i)
    expect(r["stdout"] == data and r["exit"]["code"] == 0, (len(r["stdout"]), r["exit"]))


@test("stdin flow control (8 MiB, slow consumer)")
def _(x):
    # the agent stops reading the connection; nothing is lost
    big = os.urandom(8 << 20)
    i = x.c.exec_start(argv=["sh", "-c", "sleep 0.5; sha256sum"], stdin=True)
    for o in range(0, len(big), CHUNK):
        x.c.send({"op": "stdin", "id": i}, big[o:o + CHUNK])
    x.c.send({"op": "stdin", "id": i, "eof": True})
    r = x.c.collect(i)
    expect(r["stdout"].split()[0].decode() == hashlib.sha256(big).hexdigest(), r["stdout"])


@test("stdin after exit is dropped")
def _(x):
    r = x.c.run(argv=["true"])
    x.c.send({"op": "stdin", "id": r["id"]}, b"late")  # dropped, no reply
    expect(x.c.request({"op": "hello"})["ev"] == "hello")


@test("50 concurrent execs on one connection")
def _(x):
    ids = {x.c.exec_start(argv=["sh", "-c", f"sleep 0.{k % 3}; echo n{k}; echo e{k} >&2; exit {k % 7}"]): k
           for k in range(50)}
    bad = []
    for i, k in ids.items():
        r = x.c.collect(i)
        if r["stdout"] != f"n{k}\n".encode() or r["stderr"] != f"e{k}\n".encode() or r["exit"]["code"] != k % 7:
            bad.append((k, r))
    expect(not bad, bad[:2])


# ---------------------------------------------------------------- signal and missing programs

@test("signal op")
def _(x):
    i = x.c.exec_start(argv=["sleep", "10"])
    h, _, _ = x.c.get(i)
    expect(h["ev"] == "started", h)
    rep = x.c.request({"op": "signal", "target": i, "signal": 15})
    r = x.c.collect(i)
    expect(rep["ev"] == "ok" and r["exit"]["signal"] == 15, (rep, r["exit"]))


@test("signal unknown exec -> ESRCH")
def _(x):
    rep = x.c.request({"op": "signal", "target": 999999, "signal": 15})
    expect(error_code(rep) == "ESRCH", rep)


@test("missing program -> ENOENT, the message names it and why")
def _(x):
    r = x.c.run(argv=["definitely-not-a-program-xyz"])
    expect(error_code(r) == "ENOENT" and r["started"] is None, r)
    expect(r["error"]["message"] == "cannot execute definitely-not-a-program-xyz: No such file or directory", r["error"])


@test("missing absolute program -> ENOENT")
def _(x):
    r = x.c.run(argv=["/no/such/prog"])
    expect(error_code(r) == "ENOENT", r)


@test("exec a directory -> EACCES, the message names it and why")
def _(x):
    r = x.c.run(argv=[x.at("etc")])
    expect(error_code(r) == "EACCES", r)
    expect(r["error"]["message"] == f"cannot execute {x.at('etc')}: Permission denied", r["error"])


@test("a program name echoed in an error is cut at 1 KiB")
def _(x):
    r = x.c.run(argv=["x" * 5000])
    # then ": " and the C library's text (musl: "Filename too long")
    expect(error_code(r) == "ENAMETOOLONG"
           and r["error"]["message"].startswith("cannot execute " + "x" * 1024 + "...: "), r["error"])


@test("script without #! runs with /bin/sh")
def _(x):
    script = os.path.join(x.tmp, "noshebang")
    with open(script, "w") as f:
        f.write("echo via-sh\n")
    os.chmod(script, 0o755)
    r = x.c.run(argv=[script])
    expect(r["stdout"] == b"via-sh\n", r)


@test("exec without argv/cmd -> EPROTO")
def _(x):
    rep = x.c.request({"op": "exec"})
    expect(error_code(rep) == "EPROTO", rep)


# ---------------------------------------------------------------- write and read

@test("write 5 MiB lands inside the root, reads back the same")
def _(x):
    data = os.urandom(5 * 1024 * 1024 + 123)
    h = x.c.write_file("/big/dir/file.bin", data, mkdirs=True)
    expect(h == {"ev": "ok", "id": h["id"], "size": len(data)}, h)
    with open(x.at("big/dir/file.bin"), "rb") as f:
        expect(hashlib.sha256(f.read()).digest() == hashlib.sha256(data).digest(), "the file on disk differs")
    got, end = x.c.read_file("/big/dir/file.bin")
    expect(got is not None and hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
           and end["size"] == len(data), end)


@test("read offset/length")
def _(x):
    data = os.urandom(100000)
    x.c.write_file("/rol.bin", data)
    got, end = x.c.read_file("/rol.bin", offset=1000, length=70000)
    expect(got == data[1000:71000] and end["size"] == 70000, end)


@test("append")
def _(x):
    x.c.write_file("/app.txt", b"head")
    h = x.c.write_file("/app.txt", b"tail", append=True)
    st = x.c.request({"op": "stat", "path": "/app.txt"})
    expect(h == {"ev": "ok", "id": h["id"], "size": 4} and st["size"] == 8, (h, st))


@test("write mode")
def _(x):
    x.c.write_file("/m.txt", b"x", mode=0o600)
    st = x.c.request({"op": "stat", "path": "/m.txt"})
    expect(st["mode"] == 0o600 and st["type"] == "file", st)


@test("write without mkdirs -> ENOENT")
def _(x):
    h = x.c.write_file("/nodir/x.txt", b"x")
    expect(error_code(h) == "ENOENT", h)


@test("read a directory -> EISDIR")
def _(x):
    got, end = x.c.read_file("/etc")
    expect(got is None and end["code"] == "EISDIR", end)


@test("a stream id in use -> EPROTO for a new stream; the first one goes on")
def _(x):
    i = x.c.new_id()
    x.c.send({"op": "write", "id": i, "path": "/inuse.txt"})
    errs = []
    for op in ("write", "read", "list"):
        x.c.send({"op": op, "id": i, "path": "/"})
        errs.append(x.c.get(i)[0])
    expect(all(error_code(h) == "EPROTO" and "already in use" in h["message"] for h in errs), errs)
    x.c.send({"op": "data", "id": i}, b"kept")
    x.c.send({"op": "end", "id": i})
    h = x.c.get(i)[0]
    expect(h == {"ev": "ok", "id": i, "size": 4}, h)


@test("read missing -> ENOENT")
def _(x):
    got, end = x.c.read_file("/nope")
    expect(got is None and end["code"] == "ENOENT", end)


@test("a stalled reader: the agent stays responsive, its memory bounded, the file whole")
def _(x):
    data = os.urandom(5 * 1024 * 1024)
    x.c.write_file("/slow.bin", data)
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    raw.connect(x.sock)
    raw.sendall(encode({"op": "read", "id": 1, "path": "/slow.bin"}))
    time.sleep(0.5)
    rss_before = vmrss_kib(x.apid)
    c2 = x.conn()
    t0 = time.monotonic()
    h = c2.request({"op": "hello"}, timeout=10)
    st = c2.request({"op": "stat", "path": "/slow.bin"}, timeout=10)
    dt = time.monotonic() - t0
    time.sleep(0.5)
    rss_stalled = vmrss_kib(x.apid)
    print(f"  (VmRSS before stall {rss_before} KiB, while stalled {rss_stalled} KiB)", flush=True)
    print(f"  (hello and stat answered in {dt:.3f} s while the reader stalls)", flush=True)
    expect(h["ev"] == "hello" and st["size"] == len(data), (h, st))
    if not x.skip_rss:
        expect(rss_stalled < 4096, f"VmRSS {rss_stalled} KiB while stalled")
    got = bytearray()
    while True:
        f = recv_frame(raw)
        expect(f is not None, "EOF before the end")
        h, p = f
        if h["ev"] != "data":
            break
        got += p
        time.sleep(0.0005)
    raw.close()
    expect(h["ev"] == "end" and bytes(got) == data, h)


@test("exec output paused for a stalled connection, complete after it")
def _(x):
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.connect(x.sock)
    raw.sendall(encode({"op": "exec", "id": 1, "argv": ["head", "-c", "20000000", "/dev/zero"]}))
    time.sleep(1.0)
    rss = vmrss_kib(x.apid)
    print(f"  (VmRSS with 20 MB of exec output pending on a stalled connection: {rss} KiB)", flush=True)
    if not x.skip_rss:
        expect(rss < 6144, f"VmRSS {rss} KiB")
    n = 0
    while True:
        f = recv_frame(raw)
        expect(f is not None, "EOF before the exit")
        h, p = f
        if h["ev"] == "stdout":
            n += len(p)
        elif h["ev"] == "exit":
            break
    raw.close()
    expect(n == 20000000 and h["code"] == 0, (n, h))


# ---------------------------------------------------------------- stat, list, mkdir, remove

@test("mkdir parents, and again on the existing dir")
def _(x):
    h = x.c.request({"op": "mkdir", "path": "/mk/e/f", "parents": True})
    expect(h["ev"] == "ok" and os.path.isdir(x.at("mk/e/f")), h)
    h = x.c.request({"op": "mkdir", "path": "/mk/e/f", "parents": True})
    expect(h["ev"] == "ok", h)


@test("mkdir existing -> EEXIST")
def _(x):
    os.makedirs(x.at("mkx/a"))
    h = x.c.request({"op": "mkdir", "path": "/mkx/a"})
    expect(error_code(h) == "EEXIST", h)


@test("mkdir missing parent -> ENOENT")
def _(x):
    h = x.c.request({"op": "mkdir", "path": "/x/y"})
    expect(error_code(h) == "ENOENT", h)


@test("mkdir mode")
def _(x):
    h = x.c.request({"op": "mkdir", "path": "/mkmode", "mode": 0o700})
    expect(h["ev"] == "ok" and (os.stat(x.at("mkmode")).st_mode & 0o777) == 0o700, h)


@test("stat file")
def _(x):
    x.c.write_file("/st/a.txt", b"hello", mkdirs=True)
    st = x.c.request({"op": "stat", "path": "/st/a.txt"})
    expect(st["ev"] == "stat" and st["type"] == "file" and st["size"] == 5 and st["mode"] == 0o644
           and st["target"] is None and st["uid"] == os.getuid() and abs(st["mtimeMs"] / 1000 - time.time()) < 60, st)


@test("stat dir")
def _(x):
    st = x.c.request({"op": "stat", "path": "/etc"})
    expect(st["type"] == "dir", st)


@test("stat symlink nofollow")
def _(x):
    os.makedirs(x.at("stl"))
    os.symlink(x.outside, x.at("stl/escape"))
    st = x.c.request({"op": "stat", "path": "/stl/escape", "follow": False})
    expect(st["type"] == "symlink" and st["target"] == x.outside, st)


@test("stat symlink follow stays in root")
def _(x):
    os.makedirs(x.at("stf"))
    os.symlink(x.outside, x.at("stf/escape"))
    st = x.c.request({"op": "stat", "path": "/stf/escape"})
    expect(error_code(st) == "ENOENT", st)


@test("list: names (invalid UTF-8 escaped), types, sizes")
def _(x):
    x.put("ls/a.txt", "hello")
    os.makedirs(x.at("ls/f"))
    os.symlink("../../../../../../../" + x.outside, x.at("ls/escape-rel"))
    with open(os.path.join(x.root.encode(), b"ls/bad-\xff-name"), "w"):
        pass
    entries, end = x.c.list_dir("/ls")
    names = sorted(e["name"] for e in entries)
    expect(end["ev"] == "end" and end["count"] == 4 and names == sorted(["a.txt", "f", "escape-rel", "bad-\u00ff-name"])
           and {e["name"]: e["type"] for e in entries}["escape-rel"] == "symlink"
           and {e["name"]: e["size"] for e in entries}["a.txt"] == 5, (names, end))


@test("list a file -> ENOTDIR")
def _(x):
    entries, end = x.c.list_dir("/etc/passwd")
    expect(error_code(end) == "ENOTDIR", end)


@test("remove non-empty dir without recursive -> ENOTEMPTY")
def _(x):
    x.put("rne/a.txt", "x")
    h = x.c.request({"op": "remove", "path": "/rne"})
    expect(error_code(h) == "ENOTEMPTY", h)


@test("remove symlink removes the link")
def _(x):
    os.makedirs(x.at("rsl"))
    os.symlink(x.outside, x.at("rsl/escape"))
    h = x.c.request({"op": "remove", "path": "/rsl/escape"})
    expect(h["ev"] == "ok" and os.path.exists(os.path.join(x.outside, "keep.txt"))
           and not os.path.lexists(x.at("rsl/escape")), h)


@test("remove recursive, symlinks not followed")
def _(x):
    x.put("rr/e/f/b.txt", "world!")
    os.symlink(x.outside, x.at("rr/e/f/escape"))
    os.symlink("../../../../../../../" + x.outside, x.at("rr/e/escape-rel"))
    h = x.c.request({"op": "remove", "path": "/rr", "recursive": True})
    expect(h["ev"] == "ok" and not os.path.lexists(x.at("rr")) and os.path.exists(os.path.join(x.outside, "keep.txt")), h)


@test("remove missing -> ENOENT")
def _(x):
    h = x.c.request({"op": "remove", "path": "/no-such-dir"})
    expect(error_code(h) == "ENOENT", h)


@test("remove of the root ('/', '//', '/..', '/etc/..') -> EBUSY, the root survives")
def _(x):
    for p in ("/", "//", "/..", "/etc/.."):
        h = x.c.request({"op": "remove", "path": p, "recursive": True})
        expect(error_code(h) == "EBUSY", (p, h))
    expect(os.path.exists(x.at("etc/passwd")), "the root was emptied")


# ---------------------------------------------------------------- paths stay in the root

@test("'/../../etc/passwd' stays in the root")
def _(x):
    got, end = x.c.read_file("/../../etc/passwd")
    expect(got == b"FAKE PASSWD\n", (got, end))


@test("absolute symlink resolves in the root")
def _(x):
    got, end = x.c.read_file("/evil")
    expect(got == b"FAKE SHADOW\n", (got, end))


@test("relative ../ symlink resolves in the root")
def _(x):
    got, end = x.c.read_file("/evil-rel")
    expect(got == b"FAKE PASSWD\n", (got, end))


@test("relative path -> EINVAL")
def _(x):
    got, end = x.c.read_file("etc/passwd")
    expect(got is None and end["code"] == "EINVAL", end)


@test("path with NUL -> EINVAL")
def _(x):
    got, end = x.c.read_file("/etc/passwd\u0000x")
    expect(got is None and end["code"] == "EINVAL", end)


@test("write through a symlink stays in the root")
def _(x):
    x.put("wl/target", "before")
    os.symlink("/wl/target", x.at("wlink"))
    h = x.c.write_file("/wlink", b"overwritten")
    with open(x.at("wl/target"), "rb") as f:
        expect(h["ev"] == "ok" and f.read() == b"overwritten", h)


@test("write '/../../x' stays in the root")
def _(x):
    h = x.c.write_file("/../../escaped.txt", b"x")
    expect(h["ev"] == "ok" and os.path.exists(x.at("escaped.txt"))
           and not os.path.exists(os.path.join(os.path.dirname(x.tmp), "escaped.txt")), h)


@test("mkdir through an absolute symlink stays in the root")
def _(x):
    os.symlink("/", x.at("rootlink"))
    h = x.c.request({"op": "mkdir", "path": "/rootlink/tmp/made-by-agent", "parents": True})
    expect(h["ev"] == "ok" and os.path.isdir(x.at("tmp/made-by-agent")), h)


@test("magic link /proc/self/root -> ELOOP; a plain /proc file reads")
def _(x):
    # needs the real /proc: a second agent rooted at "/"
    sock = os.path.join(x.tmp, "root-slash.sock")
    a2 = start_agent(x.binary, ["--socket", sock, "--root", "/", *x.extra])
    try:
        c2 = Conn(sock)
        for magic in ("/proc/self/root/etc/passwd", f"/proc/{a2.pid}/root/etc/passwd", f"/proc/{a2.pid}/cwd/etc/passwd", f"/proc/{a2.pid}/fd/0"):
            got, end = c2.read_file(magic)
            expect(got is None and end["code"] == "ELOOP", (magic, end))
        got, end = c2.read_file(f"/proc/{a2.pid}/status")  # size 0 in stat
        expect(got is not None and b"VmRSS" in got, end)
        c2.close()
    finally:
        a2.terminate()
        a2.wait(5)


@test("a directory swapped for a symlink out of the root, over and over, never leads out")
def _(x):
    # CVE-2018-15664's race (docker cp): the agent must never read or
    # write through the symlink, whichever resolver it uses
    import threading
    d = x.at("flip")
    os.makedirs(d)
    x.put("flip/f", "inside\n")
    with open(os.path.join(x.outside, "f"), "w") as f:
        f.write("OUTSIDE\n")
    stop_flag = threading.Event()

    def flipper():
        while not stop_flag.is_set():
            try:
                os.rename(d, d + ".real")
                os.symlink(x.outside, d)
                os.unlink(d)
                os.rename(d + ".real", d)
                time.sleep(0.0005)  # the real directory a while too: reads inside must happen
            except OSError:
                pass
    th = threading.Thread(target=flipper)
    th.start()
    seen = set()
    try:
        for n in range(300):
            got, end = x.c.read_file("/flip/f")
            seen.add(got)
            x.c.write_file(f"/flip/w{n % 3}", b"w")
    finally:
        stop_flag.set()
        th.join()
    expect(b"OUTSIDE\n" not in seen, "read a file outside the root")
    expect(b"inside\n" in seen, ("never read the file inside", seen))
    expect(sorted(os.listdir(x.outside)) == ["f", "keep.txt"], os.listdir(x.outside))


# ---------------------------------------------------------------- malformed input

MALFORMED = (("zero header length", struct.pack(">II", 0, 0)),
             ("oversize payload", struct.pack(">II", 2, 2 * 1024 * 1024) + b"{}"),
             ("header not an object", encode([1, 2])),
             ("header not JSON", struct.pack(">II", 5, 0) + b"{oops"))


def malformed_test(what, frame):
    @test(f"malformed frame ({what}) -> EPROTO on id 0, closed; other connections unaffected")
    def _(x):
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        raw.connect(x.sock)
        raw.sendall(frame)
        f = recv_frame(raw)
        after = recv_frame(raw)
        raw.close()
        expect(f is not None and f[0].get("ev") == "error" and f[0].get("id") == 0 and f[0].get("code") == "EPROTO"
               and after is None, (f, after))
        expect(x.c.request({"op": "hello"})["ev"] == "hello", "the shared connection stopped answering")


for _what, _frame in MALFORMED:
    malformed_test(_what, _frame)


@test("unknown op -> EPROTO, connection stays")
def _(x):
    h = x.c.request({"op": "frobnicate"})
    expect(error_code(h) == "EPROTO" and x.c.request({"op": "hello"})["ev"] == "hello", h)


@test("unknown fields ignored")
def _(x):
    h = x.c.request({"op": "hello", "extra": {"nested": [1, 2.5e3, True, None, "\ud83d\ude00"]}})
    expect(h["ev"] == "hello", h)


@test("fuzzed headers and connection churn do not crash the agent")
def _(x):
    # mutated headers mixed with execs and connection churn; this caught a
    # stale-epoll-registration use-after-free (a child between fork and
    # execve held a copy of a closed connection's fd)
    seeds = [{"op": "hello", "id": 1}, {"op": "exec", "id": 2, "argv": ["true"], "env": {"A": "b"}, "timeoutMs": 100},
             {"op": "exec", "id": 3, "argv": ["no-such-program-xyz"]}, {"op": "exec", "id": 4, "cmd": "echo \u00e9"},
             {"op": "stat", "id": 5, "path": "/", "follow": False}, {"op": "list", "id": 6, "path": "/etc"},
             {"op": "read", "id": 7, "path": "/etc/passwd", "offset": 0, "length": -1},
             {"op": "write", "id": 8, "path": "/fz/w", "mode": 420, "mkdirs": True}, {"op": "data", "id": 8},
             {"op": "end", "id": 8}, {"op": "mkdir", "id": 9, "path": "/fz/a/b", "parents": True},
             {"op": "remove", "id": 10, "path": "/fz/a", "recursive": True},
             {"op": "signal", "id": 11, "target": 2, "signal": 0}, {"op": "stdin", "id": 2, "eof": True}]
    rnd = random.Random(7)
    for it in range(400):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(x.sock)
        try:
            for _ in range(5):
                h = bytearray(json.dumps(rnd.choice(seeds)).encode())
                for _ in range(rnd.randint(0, 3)):
                    pos = rnd.randrange(len(h))
                    r = rnd.random()
                    if r < 0.4:
                        h[pos] = rnd.randrange(256)
                    elif r < 0.6:
                        del h[pos]
                    else:
                        h[pos:pos] = rnd.choice([b"\\ud800", b"\\u0000", b"1e999", b"[[[[", b'"\xff"', b"{", b","])
                pl = os.urandom(rnd.choice([0, 0, 10, 70000]))
                s.sendall(struct.pack(">II", len(h), len(pl)) + bytes(h) + pl)
            if it % 2:
                s.sendall(encode({"op": "hello", "id": 77}))
                while True:
                    f = recv_frame(s)
                    if f is None or f[0].get("id") == 77:
                        break
        except (BrokenPipeError, ConnectionResetError):
            pass
        s.close()
        if x.agent.poll() is not None:
            break
    expect(x.agent.poll() is None and x.c.request({"op": "hello"})["ev"] == "hello", f"agent exit {x.agent.poll()}")


# ---------------------------------------------------------------- children and connections

@test("orphans reaped (no zombies)")
def _(x):
    for _ in range(3):
        r = x.c.run(argv=["sh", "-c", "sleep 0.1 & exit 0"])
        expect(r["exit"]["code"] == 0, r)
    expect(until(lambda: not zombie_children(x.apid)), zombie_children(x.apid))


@test("connection loss kills a non-keepAlive exec; a keepAlive one survives and is reaped")
def _(x):
    c3 = Conn(x.sock)
    i1 = c3.exec_start(argv=["sleep", "30"])
    i2 = c3.exec_start(argv=["sleep", "30"], keepAlive=True)
    p1 = c3.get(i1)[0]["pid"]
    p2 = c3.get(i2)[0]["pid"]
    c3.close()
    killed = until(lambda: not alive(p1))
    survived = alive(p2)
    if survived:
        os.kill(p2, signal.SIGKILL)
        time.sleep(0.3)
    expect(killed, "the exec without keepAlive still runs")
    expect(survived, "the keepAlive exec died with its connection")
    expect(not zombie_children(x.apid), "the detached exec was not reaped")


@test("--fd connection serves requests, --path is the default PATH")
def _(x):
    a, b = socket.socketpair()
    p = subprocess.Popen([x.binary, "--fd", str(b.fileno()), "--root", x.root, "--path", "/opt/x:/bin:/usr/bin"],
                         pass_fds=(b.fileno(),))
    b.close()
    try:
        a.sendall(encode({"op": "hello", "id": 1}))
        h = recv_frame(a)[0]
        out, last = exec_on(a, 2, ["sh", "-c", 'echo "fdmode $PATH"; sleep 0.2 & exit 0'])
        expect(h["ev"] == "hello" and h["pid"] == p.pid and out == b"fdmode /opt/x:/bin:/usr/bin\n", (h, last, out))
        a.close()
        time.sleep(0.6)
        expect(p.poll() is None, "--fd EOF ended the agent")
        expect(until(lambda: not zombie_children(p.pid)), "after --fd EOF the agent does not reap")
        p.send_signal(signal.SIGINT)
        expect(p.wait(2) == 0, "SIGINT with no execs: not exit 0 at once")
    finally:
        stop(p)


# ---------------------------------------------------------------- vsock

def vsock_port():
    return 20000 + (os.getpid() * 7 + int(time.time() * 1000)) % 40000


def needs_vsock():
    why = vsock_unavailable()
    if why:
        raise Skip(why)


@test("--vsock PORT listens on that port, O_NONBLOCK|O_CLOEXEC; exits 0 on SIGTERM")
def _(x):
    needs_vsock()
    port = vsock_port()
    p = start_agent(x.binary, ["--vsock", str(port), "--root", x.root])
    try:
        taken = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        try:
            taken.bind((socket.VMADDR_CID_ANY, port))
            err = None
        except OSError as e:
            err = e.errno
        finally:
            taken.close()
        expect(err == 98, f"binding the agent's port gave errno {err}, not EADDRINUSE")
        socks = socket_fds(p.pid)
        flags = [fd_flags(p.pid, fd) for fd in socks]
        expect(len(socks) == 1 and flags[0] & 0o4000 and flags[0] & 0o2000000, (socks, [oct(f) for f in flags]))
        p.send_signal(signal.SIGTERM)
        expect(p.wait(5) == 0, "exit status on SIGTERM")
    finally:
        stop(p)


@test("vsock loopback: hello and exec")
def _(x):
    needs_vsock()
    why = vsock_loopback_unavailable()
    if why:
        raise Skip(why)
    port = vsock_port()
    p = start_agent(x.binary, ["--vsock", str(port), "--root", x.root])
    try:
        s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect((1, port))  # VMADDR_CID_LOCAL
        s.sendall(encode({"op": "hello", "id": 1}))
        h = recv_frame(s)[0]
        out, last = exec_on(s, 2, ["echo", "over-vsock"])
        s.close()
        expect(h["ev"] == "hello" and out == b"over-vsock\n", (h, last, out))
    finally:
        stop(p)


@test("--socket with --vsock: unix socket served, two listeners")
def _(x):
    needs_vsock()
    sock = os.path.join(x.tmp, "both", "agent.sock")
    p = start_agent(x.binary, ["--socket", sock, "--vsock", str(vsock_port()), "--root", x.root])
    try:
        listeners = socket_fds(p.pid)  # before any connection exists
        c5 = Conn(sock)
        h = c5.request({"op": "hello"})
        c5.close()
        expect(h["ev"] == "hello" and len(listeners) == 2, (h, listeners))
    finally:
        stop(p)


@test("--vsock with a bad port is a usage error")
def _(x):
    bad = subprocess.run([x.binary, "--vsock", "4294967295", "--root", x.root], stderr=subprocess.PIPE)
    expect(bad.returncode == 2, bad)


# ---------------------------------------------------------------- what all the others left (keep these last)

@test("idle RSS under 1 MiB")
def _(x):
    time.sleep(0.3)
    rss = vmrss_kib(x.apid)
    print(f"  idle agent VmRSS {rss} KiB", flush=True)
    x.needs_rss_bounds()
    expect(rss < 1024, f"VmRSS {rss} KiB")


@test("no leaked fds after all execs and streams ended")
def _(x):
    # connections closed by earlier tests: the agent may take a moment to see them go
    until(lambda: not {k for k in fd_kinds(x.apid) if k not in ("socket", "anon", x.root)} and fd_kinds(x.apid)[x.root] == 1, 5)
    kinds = fd_kinds(x.apid)
    print(f"  (agent fds above stdio: {dict(kinds)})", flush=True)
    # expected: epoll and signalfd (anon), the root dir, listener + open connections
    leaked = {k: v for k, v in kinds.items() if k not in ("socket", "anon", x.root)}
    expect(not leaked and kinds[x.root] == 1, dict(kinds))


@test("SIGTERM forwarded, agent exits 0, socket removed")
def _(x):
    c4 = Conn(x.sock)
    i = c4.exec_start(argv=["sleep", "30"])
    c4.get(i)
    t0 = time.monotonic()
    x.agent.send_signal(signal.SIGTERM)
    r = c4.collect(i, timeout=5)
    rc = x.agent.wait(5)
    # signal 15, not 9: it was forwarded and the agent did not wait out a grace period to SIGKILL
    expect(r["exit"]["signal"] == 15 and rc == 0, (r["exit"], rc, time.monotonic() - t0))
    expect(not os.path.exists(x.sock), "the socket is still there")


def main():
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        print(__doc__)
        sys.exit(2)
    binary = os.path.abspath(args[0])
    select = args[args.index("-k") + 1] if "-k" in args[:-1] else None
    skip_rss = "--skip-rss" in args
    if not skip_rss and is_dynamic(binary):
        print("note: dynamically linked binary, memory-bound checks skipped", flush=True)
        skip_rss = True
    # --resolver walk: the agent resolves paths as it does without openat2 (gVisor)
    extra = ["--resolver", args[args.index("--resolver") + 1]] if "--resolver" in args[:-1] else []
    ctx = Ctx(binary, skip_rss, extra)
    try:
        failed = run_tests(ctx, TESTS, select)
    finally:
        ctx.close()
    if failed:
        print("failed: " + ", ".join(failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
