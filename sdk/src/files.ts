import type { components } from "./api-types.js";
import type { RequestControl } from "./channel.js";
import { errorFor, InvalidArgumentError, NotFoundError, SandboxError } from "./errors.js";
import type { Http, RawBody } from "./http.js";

export type FileStat = components["schemas"]["FileStat"];
/** A directory entry, with its full path added. */
export type EntryInfo = components["schemas"]["DirEntry"] & { path: string };
export interface WriteInfo {
  path: string;
  /** Bytes written. */
  size: number;
}
/** What `files.write` accepts; streams are sent as they are read, never buffered whole. */
export type WriteData = string | Uint8Array | ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>;

export interface WriteOpts {
  /** Permission bits, e.g. 0o755 or "755". */
  mode?: number | string | undefined;
  requestTimeoutMs?: number | undefined;
}

export interface ReadOpts {
  requestTimeoutMs?: number | undefined;
}

/** A change in a watched directory (E2B's FilesystemEvent, and `overflow`). */
export interface FilesystemEvent {
  /**
   * create (a name made, or moved in), write, remove, rename (a name
   * moved away: its old name), chmod; overflow: events were lost while the
   * reader was behind (the kernel's queue filled), `name` is "".
   */
  type: "create" | "write" | "remove" | "rename" | "chmod" | "overflow";
  /** Relative to the watched directory ("src/a.ts"). */
  name: string;
  dir: boolean;
}

export interface WatchOpts {
  /** Watch every directory under it too (those made later as well). */
  recursive?: boolean | undefined;
  /** Called once when the watch ends: the directory went (no error), the connection failed, or stop(). */
  onExit?: ((err?: Error) => void) | undefined;
}

/** A directory watch from `files.watchDir`. */
export interface WatchHandle {
  /** Ends the watch. */
  stop(): Promise<void>;
}

/** Files in one sandbox. Paths are absolute paths inside it. */
export class Files {
  constructor(
    private readonly http: Http,
    private readonly sandboxId: string,
  ) {}

  /**
   * Writes a file, creating its parent directories; the data is streamed as
   * the request body. requestTimeoutMs covers the whole upload.
   */
  async write(path: string, data: WriteData, opts: WriteOpts = {}): Promise<WriteInfo> {
    absolute(path, "write");
    const mode = opts.mode === undefined ? undefined : typeof opts.mode === "number" ? opts.mode.toString(8) : opts.mode;
    const r = await this.http.json("put", "/v1/sandboxes/{id}/files", {
      path: { id: this.sandboxId },
      query: { path, ...(mode !== undefined ? { mode } : {}) },
      body: data satisfies RawBody,
      ...timeout(opts),
    });
    return { path: r.path, size: r.size };
  }

  /** Reads a file: as UTF-8 text (default), bytes, or a stream of its bytes. */
  read(path: string, opts?: ReadOpts & { format?: "text" }): Promise<string>;
  read(path: string, opts: ReadOpts & { format: "bytes" }): Promise<Uint8Array>;
  read(path: string, opts: ReadOpts & { format: "stream" }): Promise<ReadableStream<Uint8Array>>;
  async read(path: string, opts: ReadOpts & { format?: "text" | "bytes" | "stream" } = {}): Promise<string | Uint8Array | ReadableStream<Uint8Array>> {
    absolute(path, "read");
    const res = await this.http.stream("get", "/v1/sandboxes/{id}/files", { path: { id: this.sandboxId }, query: { path }, ...timeout(opts) });
    const format = opts.format ?? "text";
    if (format === "stream") {
      return res.body;
    }
    const bytes = new Uint8Array(await res.arrayBuffer());
    return format === "bytes" ? bytes : new TextDecoder().decode(bytes);
  }

  /**
   * A tar stream of `path` in the sandbox (a directory and everything
   * under it, or a file), as `docker cp` gets one: members are named from
   * the path's basename ("dir/", "dir/a"), owners kept as numbers. Made
   * by the sandbox's own tar; NotFoundError when nothing is at the path.
   * A failure once bytes flowed errors the stream. requestTimeoutMs
   * (default: none) covers the whole download.
   */
  async downloadArchive(path: string, opts: ReadOpts = {}): Promise<ReadableStream<Uint8Array>> {
    absolute(path, "downloadArchive");
    const res = await this.http.stream("get", "/v1/sandboxes/{id}/archive", { path: { id: this.sandboxId }, query: { path }, timeoutMs: opts.requestTimeoutMs ?? 0 });
    return res.body;
  }

  /**
   * Extracts a tar stream into directory `dir` in the sandbox (made with
   * its parents when missing), by the sandbox's own tar: nothing lands
   * outside the sandbox. Owners are not restored (the files are the
   * sandbox user's); modes and times are. The archive is streamed as the
   * request body. InvalidArgumentError (`invalid_archive`) for what tar
   * cannot read; a full sandbox disk is a 507 (`sandbox_enospc`).
   * requestTimeoutMs (default: none) covers the whole upload.
   */
  async uploadArchive(dir: string, archive: WriteData, opts: WriteOpts = {}): Promise<void> {
    absolute(dir, "uploadArchive");
    await this.http.json("put", "/v1/sandboxes/{id}/archive", {
      path: { id: this.sandboxId },
      query: { path: dir },
      body: archive satisfies RawBody,
      contentType: "application/x-tar",
      timeoutMs: opts.requestTimeoutMs ?? 0,
    });
  }

  /** The entries of a directory, sorted by name. */
  async list(path: string): Promise<EntryInfo[]> {
    absolute(path, "list");
    const r = await this.http.json("get", "/v1/sandboxes/{id}/files/list", { path: { id: this.sandboxId }, query: { path } });
    const dir = path.endsWith("/") ? path : `${path}/`;
    return r.entries.map((e) => ({ ...e, path: `${dir}${e.name}` }));
  }

  /** Removes a file, a symlink (never its target) or, with `recursive`, a directory tree. */
  async remove(path: string, opts: { recursive?: boolean } = {}): Promise<void> {
    absolute(path, "remove");
    await this.http.json("delete", "/v1/sandboxes/{id}/files", {
      path: { id: this.sandboxId },
      query: { path, ...(opts.recursive ? { recursive: true } : {}) },
    });
  }

  /** Creates a directory and (unless `parents: false`) its parents; fine if it exists. */
  async makeDir(path: string, opts: { parents?: boolean } = {}): Promise<void> {
    absolute(path, "makeDir");
    await this.http.json("post", "/v1/sandboxes/{id}/files/mkdir", {
      path: { id: this.sandboxId },
      json: { path, ...(opts.parents !== undefined ? { parents: opts.parents } : {}) },
    });
  }

  /** Information about a path (a symlink itself, with its `target`). NotFoundError if there is none. */
  async stat(path: string): Promise<FileStat> {
    absolute(path, "stat");
    return this.http.json("get", "/v1/sandboxes/{id}/files/stat", { path: { id: this.sandboxId }, query: { path } });
  }

  /**
   * Renames (moves) a file, directory or symlink (never its target);
   * `to` is replaced if it exists, unless `noReplace` (ConflictError).
   */
  async rename(from: string, to: string, opts: { noReplace?: boolean } = {}): Promise<void> {
    absolute(from, "rename");
    absolute(to, "rename");
    await this.http.json("post", "/v1/sandboxes/{id}/files/rename", { path: { id: this.sandboxId }, json: { from, to, ...(opts.noReplace ? { noReplace: true } : {}) } });
  }

  /**
   * Watches a directory (inotify in the sandbox): `onEvent` gets each
   * change as it happens; a returned promise is awaited before the next
   * (while it waits, changes queue in the sandbox's kernel, and an
   * `overflow` event says when some were dropped). Resolves once the
   * watch is in place.
   */
  async watchDir(path: string, onEvent: (e: FilesystemEvent) => unknown, opts: WatchOpts = {}): Promise<WatchHandle> {
    absolute(path, "watchDir");
    const control: RequestControl = {};
    let ready!: () => void;
    const watching = new Promise<void>((r) => (ready = r));
    let stopped = false;
    const done = this.http.follow(
      "get",
      "/v1/sandboxes/{id}/files/watch",
      { path: { id: this.sandboxId }, query: { path, ...(opts.recursive ? { recursive: true } : {}) } },
      {
        onEvent: (value) => {
          const e = value as components["schemas"]["WatchEvent"];
          if (e.type === "watching") return ready();
          if (e.type === "done") return undefined;
          if (e.type === "error") throw errorFor({ status: 0, code: e.error?.code ?? "watch_failed", message: e.error?.message ?? "the watch failed" });
          return onEvent({ type: e.type, name: e.name ?? "", dir: e.dir ?? false });
        },
      },
      control,
    );
    await Promise.race([watching, done]);
    void done.then(
      () => opts.onExit?.(),
      (e: unknown) => opts.onExit?.(stopped ? undefined : (e as Error)),
    );
    return {
      async stop() {
        stopped = true;
        control.cancel?.(new SandboxError("stopped", `watch of ${path}: stopped`));
        await done.catch(() => {});
      },
    };
  }

  /** Whether anything exists at the path. */
  async exists(path: string): Promise<boolean> {
    absolute(path, "exists");
    try {
      await this.stat(path);
      return true;
    } catch (e) {
      // A missing sandbox is an error, not a missing file.
      if (e instanceof NotFoundError && e.code !== "sandbox_not_found") return false;
      throw e;
    }
  }
}

/** Paths are checked here, in the SDK's terms, before any request (the daemon would refuse them too). */
function absolute(path: string, method: string): void {
  if (typeof path !== "string" || !path.startsWith("/")) {
    throw new InvalidArgumentError("invalid_argument", `files.${method}: the path must be absolute, inside the sandbox (start with "/"), got ${JSON.stringify(path)}`, 0);
  }
}

function timeout(opts: { requestTimeoutMs?: number | undefined }): { timeoutMs?: number } {
  return opts.requestTimeoutMs !== undefined ? { timeoutMs: opts.requestTimeoutMs } : {};
}
