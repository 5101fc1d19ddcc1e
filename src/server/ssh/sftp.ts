import path from "node:path";
import ssh2 from "ssh2";
import type { Attributes, FileEntry, SFTPWrapper } from "ssh2";
import type { AgentClient, FileStat } from "../../agent/client.js";
import { SandboxOperationError } from "../../core/errors.js";

const { OPEN_MODE, STATUS_CODE } = ssh2.utils.sftp;
/** Where a relative path starts (scp's and sftp's "."): root's home. */
const HOME = "/root";
/** Open handles per SFTP session. */
const MAX_HANDLES = 256;
/** Bytes a write handle may hold that the agent has not taken (SFTP clients keep ~64 writes of 32 KiB in flight). */
const WRITE_QUEUE_MAX = 8 * 1024 * 1024;

type Handle =
  | { kind: "read"; path: string }
  | { kind: "write"; path: string; next: number; queue: { data: Buffer; reqId: number }[]; queued: number; wake: (() => void) | undefined; ended: boolean; done: Promise<unknown> }
  | { kind: "dir"; path: string; sent: boolean };

/**
 * The sftp subsystem (and so scp, which speaks SFTP since OpenSSH 9) on
 * the agent's file operations: every path is resolved by the agent inside
 * the sandbox root (openat2), as for the API's files. Reads are the
 * agent's ranged reads, one per READ; a write handle is one streamed
 * agent write, so its WRITEs must come in order (scp's and sftp's put
 * do), its bytes held here up to WRITE_QUEUE_MAX. SETSTAT is accepted and
 * ignored (modes come with OPEN, times are not kept).
 */
export function serveSftp(sftp: SFTPWrapper, agentReady: Promise<AgentClient>): void {
  // The subsystem is accepted at once and the agent connected meanwhile: ssh2
  // drops a channel's data (the client's INIT) until it is accepted. A request
  // waits for the agent; callbacks on one promise run in the order they were
  // added, so WRITEs stay in order.
  let agent!: AgentClient;
  const ready = agentReady.then((a) => void (agent = a));
  ready.catch(() => {});
  const on = ((event: string, fn: (reqId: number, ...rest: never[]) => void) =>
    sftp.on(event as "OPEN", ((reqId: number, ...rest: never[]) =>
      void ready.then(
        () => fn(reqId, ...rest),
        (e: unknown) => sftp.status(reqId, STATUS_CODE.FAILURE, e instanceof Error ? e.message : String(e)),
      )) as never)) as unknown as SFTPWrapper["on"];
  const handles = new Map<number, Handle>();
  let nextHandle = 1;
  const open = (h: Handle): Buffer | undefined => {
    if (handles.size >= MAX_HANDLES) return undefined;
    const id = nextHandle++;
    handles.set(id, h);
    const b = Buffer.alloc(4);
    b.writeUInt32BE(id);
    return b;
  };
  const handleOf = (b: Buffer) => (b.length === 4 ? handles.get(b.readUInt32BE(0)) : undefined);
  const fail = (reqId: number, e: unknown) => sftp.status(reqId, statusOf(e), e instanceof Error ? e.message : String(e));
  const abs = (p: string) => path.posix.resolve(HOME, p || ".");

  on("REALPATH", (reqId, p) => {
    const full = abs(p);
    sftp.name(reqId, [{ filename: full, longname: full, attrs: {} as Attributes }]);
  });
  on("STAT", (reqId, p) => void agent.stat(abs(p), true).then((st) => sftp.attrs(reqId, attrsOf(st)), (e) => fail(reqId, e)));
  on("LSTAT", (reqId, p) => void agent.stat(abs(p), false).then((st) => sftp.attrs(reqId, attrsOf(st)), (e) => fail(reqId, e)));
  on("FSTAT", (reqId, b) => {
    const h = handleOf(b);
    if (!h) return sftp.status(reqId, STATUS_CODE.FAILURE, "no such handle");
    void agent.stat(h.path, true).then((st) => sftp.attrs(reqId, attrsOf(st)), (e) => fail(reqId, e));
  });
  on("SETSTAT", (reqId) => sftp.status(reqId, STATUS_CODE.OK));
  on("FSETSTAT", (reqId) => sftp.status(reqId, STATUS_CODE.OK));
  on("MKDIR", (reqId, p, attrs) => void agent.mkdir(abs(p), { mode: (attrs?.mode ?? 0o755) & 0o7777 }).then(() => sftp.status(reqId, STATUS_CODE.OK), (e) => fail(reqId, e)));
  on("RMDIR", (reqId, p) => void agent.remove(abs(p)).then(() => sftp.status(reqId, STATUS_CODE.OK), (e) => fail(reqId, e)));
  on("REMOVE", (reqId, p) => void agent.remove(abs(p)).then(() => sftp.status(reqId, STATUS_CODE.OK), (e) => fail(reqId, e)));
  on("RENAME", (reqId, from, to) => void agent.rename(abs(from), abs(to), { noReplace: true }).then(() => sftp.status(reqId, STATUS_CODE.OK), (e) => fail(reqId, e)));

  on("OPEN", (reqId, p, flags, attrs) => {
    const full = abs(p);
    if (!(flags & OPEN_MODE.WRITE)) {
      void agent.stat(full, true).then(
        (st) => {
          if (st.type === "dir") return sftp.status(reqId, STATUS_CODE.FAILURE, `${full} is a directory`);
          const b = open({ kind: "read", path: full });
          return b ? sftp.handle(reqId, b) : sftp.status(reqId, STATUS_CODE.FAILURE, "too many open handles");
        },
        (e) => fail(reqId, e),
      );
      return;
    }
    const h: Handle & { kind: "write" } = { kind: "write", path: full, next: 0, queue: [], queued: 0, wake: undefined, ended: false, done: Promise.resolve() };
    async function* chunks(): AsyncGenerator<Buffer> {
      for (;;) {
        if (h.queue.length) {
          const c = h.queue.shift()!;
          h.queued -= c.data.length;
          yield c.data;
          // The agent's stream took it (it asks for the next): now the WRITE is
          // answered, so the client's window of writes in flight (OpenSSH: 64
          // of 32 KiB) is what waits here, not an ever-growing queue.
          sftp.status(c.reqId, STATUS_CODE.OK);
          continue;
        }
        if (h.ended) return;
        await new Promise<void>((r) => (h.wake = r));
      }
    }
    h.done = agent.writeFile(full, chunks(), { mode: (attrs?.mode ?? 0o644) & 0o7777, append: (flags & OPEN_MODE.APPEND) !== 0 });
    h.done.catch((e: unknown) => {
      // The agent refused or broke off: the writes waiting, and any after, fail.
      h.ended = true;
      for (const c of h.queue.splice(0)) fail(c.reqId, e);
      h.queued = 0;
    });
    const b = open(h);
    if (!b) {
      h.ended = true;
      h.wake?.();
      return sftp.status(reqId, STATUS_CODE.FAILURE, "too many open handles");
    }
    sftp.handle(reqId, b);
  });

  on("WRITE", (reqId, b, offset, data) => {
    const h = handleOf(b);
    if (!h || h.kind !== "write") return sftp.status(reqId, STATUS_CODE.FAILURE, "not a handle open for writing");
    if (h.ended) return sftp.status(reqId, STATUS_CODE.FAILURE, `writing ${h.path} failed`);
    if (offset !== h.next) return sftp.status(reqId, STATUS_CODE.OP_UNSUPPORTED, `writes must come in order (at ${h.next}, not ${offset})`);
    if (h.queued + data.length > WRITE_QUEUE_MAX) return sftp.status(reqId, STATUS_CODE.FAILURE, "too much written ahead of the sandbox");
    h.next += data.length;
    h.queue.push({ data: Buffer.from(data), reqId });
    h.queued += data.length;
    const w = h.wake;
    h.wake = undefined;
    w?.();
  });

  // READs run at once on the agent (scp keeps 64 in flight) but are answered
  // in the order they came: OpenSSH's client, seeing replies out of order,
  // stops counting the file as whole and truncates it at the first gap
  // (measured: a 10 MiB download cut to 32 KiB, exit 1).
  let lastRead: Promise<void> = Promise.resolve();
  on("READ", (reqId, b, offset, len) => {
    const h = handleOf(b);
    if (!h || h.kind !== "read") return sftp.status(reqId, STATUS_CODE.FAILURE, "not a handle open for reading");
    const result = new Promise<Buffer | Error>((resolve) => {
      const parts: Buffer[] = [];
      const r = agent.readFile(h.path, { offset, length: len });
      r.on("data", (c: Buffer) => parts.push(c));
      r.once("error", (e) => resolve(e));
      r.once("end", () => resolve(Buffer.concat(parts)));
    });
    lastRead = lastRead.then(async () => {
      const data = await result;
      if (data instanceof Error) fail(reqId, data);
      else if (data.length === 0) sftp.status(reqId, STATUS_CODE.EOF);
      else sftp.data(reqId, data);
    });
  });

  on("OPENDIR", (reqId, p) => {
    const full = abs(p);
    void agent.stat(full, true).then(
      (st) => {
        if (st.type !== "dir") return sftp.status(reqId, STATUS_CODE.FAILURE, `${full} is not a directory`);
        const b = open({ kind: "dir", path: full, sent: false });
        return b ? sftp.handle(reqId, b) : sftp.status(reqId, STATUS_CODE.FAILURE, "too many open handles");
      },
      (e) => fail(reqId, e),
    );
  });
  on("READDIR", (reqId, b) => {
    const h = handleOf(b);
    if (!h || h.kind !== "dir") return sftp.status(reqId, STATUS_CODE.FAILURE, "not a directory handle");
    if (h.sent) return sftp.status(reqId, STATUS_CODE.EOF);
    h.sent = true;
    void agent.list(h.path).then(
      (entries) => {
        if (entries.length === 0) return sftp.status(reqId, STATUS_CODE.EOF);
        const names: FileEntry[] = entries.map((e) => {
          const attrs = attrsOf({ ...e, uid: 0, gid: 0 });
          return { filename: e.name, longname: longname(e.name, attrs), attrs };
        });
        return sftp.name(reqId, names);
      },
      (e) => fail(reqId, e),
    );
  });

  on("CLOSE", (reqId, b) => {
    const h = handleOf(b);
    if (!h) return sftp.status(reqId, STATUS_CODE.FAILURE, "no such handle");
    handles.delete(b.readUInt32BE(0));
    if (h.kind !== "write") return sftp.status(reqId, STATUS_CODE.OK);
    h.ended = true;
    h.wake?.();
    void h.done.then(() => sftp.status(reqId, STATUS_CODE.OK), (e) => fail(reqId, e));
  });

  // The client's EOF ends the session as OpenSSH's sftp-server exiting does:
  // exit status 0, then the channel closed. ssh2 does neither by itself for
  // an SFTP channel; scp waits for the close, and takes ssh's exit status
  // (-1 without one) as its own failure (exit 1).
  sftp.on("end", () => {
    const raw = sftp as unknown as { _protocol: { exitStatus(id: number, status: number): void }; outgoing: { id: number; state: string } };
    if (raw.outgoing.state === "open") raw._protocol.exitStatus(raw.outgoing.id, 0);
    sftp.end();
  });
  sftp.on("close", () => {
    for (const h of handles.values()) {
      if (h.kind === "write") {
        h.ended = true;
        h.wake?.();
      }
    }
    handles.clear();
  });
}

const TYPE_BITS: Record<FileStat["type"], number> = { file: 0o100000, dir: 0o040000, symlink: 0o120000, other: 0 };

function attrsOf(st: Pick<FileStat, "type" | "mode" | "size" | "uid" | "gid" | "mtimeMs">): Attributes {
  const t = Math.floor(st.mtimeMs / 1000);
  return { mode: TYPE_BITS[st.type] | (st.mode & 0o7777), uid: st.uid, gid: st.gid, size: st.size, atime: t, mtime: t };
}

function longname(name: string, a: Attributes): string {
  const kind = (a.mode & 0o170000) === 0o040000 ? "d" : (a.mode & 0o170000) === 0o120000 ? "l" : "-";
  const perms = [0o400, 0o200, 0o100, 0o40, 0o20, 0o10, 0o4, 0o2, 0o1].map((bit, i) => (a.mode & bit ? "rwx"[i % 3] : "-")).join("");
  return `${kind}${perms} 1 ${a.uid} ${a.gid} ${a.size} ${new Date(a.mtime * 1000).toISOString().slice(0, 10)} ${name}`;
}

function statusOf(e: unknown): number {
  const errno = e instanceof SandboxOperationError ? e.errno : "";
  if (errno === "ENOENT" || errno === "ENOTDIR") return STATUS_CODE.NO_SUCH_FILE;
  if (errno === "EACCES" || errno === "EPERM") return STATUS_CODE.PERMISSION_DENIED;
  return STATUS_CODE.FAILURE;
}
