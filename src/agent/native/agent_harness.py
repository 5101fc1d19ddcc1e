"""What test_agent.py needs besides its tests: the framed protocol spoken
over a socket (docs/protocol.md), starting the agent, reading /proc, and a
small runner that runs test functions in order and reports each by name.

Standard library only.
"""
import collections
import itertools
import json
import os
import queue
import socket
import struct
import subprocess
import threading
import time
import traceback

CHUNK = 64 * 1024


# ---------------------------------------------------------------- runner

class Skip(Exception):
    """Raised by a test that cannot run here; its message says why."""


TESTS = []


def test(name):
    """Registers the decorated function as the test `name`, in file order."""
    def register(fn):
        TESTS.append((name, fn))
        return fn
    return register


def expect(cond, detail=""):
    """Fails the running test with `detail` unless `cond` holds."""
    if not cond:
        raise AssertionError(detail)


def run_tests(ctx, tests, select=None):
    """Runs each test with ctx; prints PASS/FAIL/SKIP lines and the summary.

    Returns the names of the failed tests. A failed test prints
    "FAIL <name>: <detail>" (with the traceback for an unexpected error);
    the last line is "N passed, N failed, N skipped".
    """
    passed, failed, skipped = 0, [], 0
    for name, fn in tests:
        if select and select not in name:
            continue
        try:
            fn(ctx)
        except Skip as e:
            skipped += 1
            print(f"SKIP {name}: {e}", flush=True)
            continue
        except AssertionError as e:
            failed.append(name)
            print(f"FAIL {name}: {e}", flush=True)
            continue
        except Exception as e:  # noqa: BLE001 -- any error fails this test only
            failed.append(name)
            print(f"FAIL {name}: {type(e).__name__}: {e}\n{traceback.format_exc()}", flush=True)
            continue
        passed += 1
        print(f"PASS {name}", flush=True)
    print(f"{passed} passed, {len(failed)} failed, {skipped} skipped", flush=True)
    return failed


# ---------------------------------------------------------------- protocol

def encode(header, payload=b""):
    """A frame; header is a dict, or bytes sent as they are."""
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack(">II", len(h), len(payload)) + h + payload


class Conn:
    """A connection with a reader thread dispatching frames by stream id."""

    ids = itertools.count(1)

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.lock = threading.Lock()
        self.queues = collections.defaultdict(queue.Queue)
        self.qlock = threading.Lock()
        self.eof = threading.Event()
        self.t = threading.Thread(target=self._reader, daemon=True)
        self.t.start()

    def _q(self, i):
        with self.qlock:
            return self.queues[i]

    def _reader(self):
        buf = bytearray()
        try:
            while True:
                d = self.s.recv(1 << 20)
                if not d:
                    break
                buf += d
                while len(buf) >= 8:
                    hl, pl = struct.unpack(">II", buf[:8])
                    if len(buf) < 8 + hl + pl:
                        break
                    h = json.loads(bytes(buf[8:8 + hl]))
                    p = bytes(buf[8 + hl:8 + hl + pl])
                    del buf[:8 + hl + pl]
                    self._q(h.get("id")).put((h, p, time.monotonic()))
        except OSError:
            pass
        self.eof.set()

    def send(self, header, payload=b""):
        with self.lock:
            self.s.sendall(encode(header, payload))

    def get(self, i, timeout=15):
        return self._q(i).get(timeout=timeout)

    def new_id(self):
        return next(Conn.ids)

    def request(self, header, payload=b"", timeout=15):
        i = self.new_id()
        self.send(dict(header, id=i), payload)
        return self.get(i, timeout)[0]

    def exec_start(self, **req):
        i = self.new_id()
        self.send(dict(req, op="exec", id=i))
        return i

    def collect(self, i, timeout=30):
        """Frames of exec i until exit or error."""
        r = {"id": i, "stdout": b"", "stderr": b"", "frames": [], "started": None, "exit": None, "error": None}
        deadline = time.monotonic() + timeout
        while True:
            h, p, t = self.get(i, max(0.1, deadline - time.monotonic()))
            r["frames"].append((h, p, t))
            ev = h["ev"]
            if ev == "started":
                r["started"] = h
            elif ev in ("stdout", "stderr"):
                r[ev] += p
            elif ev == "exit":
                r["exit"] = h
                return r
            elif ev == "error":
                r["error"] = h
                return r

    def run(self, timeout=30, **req):
        return self.collect(self.exec_start(**req), timeout)

    def read_file(self, path, **kw):
        i = self.new_id()
        self.send(dict(op="read", id=i, path=path, **kw))
        data = bytearray()
        while True:
            h, p, _ = self.get(i)
            if h["ev"] == "data":
                data += p
            elif h["ev"] == "end":
                return bytes(data), h
            else:
                return None, h

    def write_file(self, path, data, **kw):
        i = self.new_id()
        self.send(dict(op="write", id=i, path=path, **kw))
        for o in range(0, len(data), CHUNK):
            self.send({"op": "data", "id": i}, data[o:o + CHUNK])
        self.send({"op": "end", "id": i})
        return self.get(i)[0]

    def list_dir(self, path):
        i = self.new_id()
        self.send({"op": "list", "id": i, "path": path})
        entries = []
        while True:
            h, _, _ = self.get(i)
            if h["ev"] == "entry":
                entries.append(h)
            else:
                return entries, h

    def close(self):
        try:
            self.s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.s.close()


def recv_frame(s, timeout=10):
    """Blocking read of one frame on a raw socket; None at EOF."""
    s.settimeout(timeout)
    buf = b""
    while len(buf) < 8:
        d = s.recv(8 - len(buf))
        if not d:
            return None
        buf += d
    hl, pl = struct.unpack(">II", buf)
    rest = b""
    while len(rest) < hl + pl:
        d = s.recv(hl + pl - len(rest))
        if not d:
            return None
        rest += d
    return json.loads(rest[:hl]), rest[hl:]


def exec_on(s, i, argv):
    """Runs argv as exec id i on a raw socket: (stdout, the last header)."""
    s.sendall(encode({"op": "exec", "id": i, "argv": argv}))
    out = b""
    while True:
        h, pl = recv_frame(s)
        if h["ev"] == "stdout":
            out += pl
        if h["ev"] in ("exit", "error"):
            return out, h


# ---------------------------------------------------------------- processes

def start_agent(binary, args, **popen):
    """Starts the agent with `args` plus --ready-fd and waits for "ready"."""
    r, w = os.pipe()
    p = subprocess.Popen([binary, *args, "--ready-fd", str(w)], pass_fds=(w,), **popen)
    os.close(w)
    with os.fdopen(r) as f:
        line = f.readline()
    if line != "ready\n":
        p.wait(5)
        raise RuntimeError(f"agent did not get ready: {line!r} (exit {p.returncode})")
    return p


def stop(p):
    if p.poll() is None:
        p.kill()
        p.wait()


def vmrss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def zombie_children(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        if fields[0] == "Z" and int(fields[1]) == pid:
            out.append(int(d))
    return out


def is_dynamic(path):
    """True if the ELF file has a PT_INTERP program header."""
    with open(path, "rb") as f:
        elf = f.read(1 << 16)
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        return False
    phoff, = struct.unpack_from("<Q", elf, 32)
    phentsize, phnum = struct.unpack_from("<HH", elf, 54)
    return any(struct.unpack_from("<I", elf, phoff + k * phentsize)[0] == 3 for k in range(phnum))


def fd_flags(pid, fd):
    with open(f"/proc/{pid}/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("flags:"):
                return int(line.split()[1], 8)
    return -1


def socket_fds(pid):
    """The socket fds of pid above stdio (stdio may be sockets under node)."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        if int(fd) < 3:
            continue
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                out.append(int(fd))
        except OSError:
            pass
    return out


def fd_kinds(pid):
    """What pid's fds above stdio are: a Counter of pipe/socket/anon/paths."""
    kinds = collections.Counter()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        if int(fd) < 3:
            continue
        try:
            t = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kinds["pipe" if t.startswith("pipe:") else "socket" if t.startswith("socket:")
              else "anon" if t.startswith("anon_inode:") else t] += 1
    return kinds


# ---------------------------------------------------------------- vsock

def vsock_unavailable():
    """None when this kernel has AF_VSOCK, else why not."""
    if not hasattr(socket, "AF_VSOCK"):
        return "python has no socket.AF_VSOCK"
    try:
        socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM).close()
    except OSError as e:
        return f"no AF_VSOCK in this kernel ({e})"
    return None


def vsock_loopback_unavailable():
    """None when the vsock loopback transport (CID 1) is there, else why not.

    Looked up rather than tried: without it a connect to CID 1 may go out
    through the guest transport to whatever hypervisor runs this host.
    """
    for modprobe in ("/sbin/modprobe", "/usr/sbin/modprobe"):
        if os.path.exists(modprobe):
            subprocess.run([modprobe, "-q", "vsock_loopback"], stderr=subprocess.DEVNULL, check=False)
            break
    if os.path.isdir("/sys/module/vsock_loopback"):
        return None
    release = os.uname().release
    try:
        with open(f"/lib/modules/{release}/modules.builtin") as f:
            if "vsock_loopback" in f.read():
                return None
    except OSError:
        pass
    try:
        import gzip
        with gzip.open("/proc/config.gz", "rt") as f:
            if "CONFIG_VSOCKETS_LOOPBACK=y" in f.read():
                return None
    except OSError:
        pass
    return f"kernel {release} has no vsock_loopback transport (module not loaded, not built in)"
