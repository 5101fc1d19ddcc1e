import http from "node:http";
import https from "node:https";
import { Readable } from "node:stream";

/** What one request sends. */
export interface Outgoing {
  readonly method: string;
  readonly headers: Record<string, string>;
  readonly body?: string | Uint8Array | ReadableStream<Uint8Array> | AsyncIterable<Uint8Array> | undefined;
}

/**
 * A request on its way: `reply` resolves when the response starts;
 * `cancel(e)` ends it at any point, and whatever was waiting on it (the
 * reply, or reading the body) fails with `e`. A plain callback, not an
 * AbortSignal: the EventTarget listeners Node attaches for a signal cost
 * ~0.05 ms a request on the machines we measure on.
 */
export interface Sending {
  readonly reply: Promise<Reply>;
  cancel(e: Error): void;
}

/** Connections kept open between calls, shared by every Sandbox of the process. */
const agents = {
  http: new http.Agent({ keepAlive: true }),
  https: new https.Agent({ keepAlive: true }),
};

/** A response, as soon as it starts: its status, then its body read one of the ways below, once. */
export class Reply {
  readonly status: number;
  readonly statusText: string;

  constructor(private readonly res: http.IncomingMessage) {
    this.status = res.statusCode ?? 0;
    this.statusText = res.statusMessage ?? "";
  }

  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  header(name: string): string | undefined {
    const v = this.res.headers[name.toLowerCase()];
    return Array.isArray(v) ? v.join(", ") : v;
  }

  /** The body as the Node stream it is. */
  stream(): Readable {
    return this.res;
  }

  /** The body as a web stream (for callers who asked for one). */
  get body(): ReadableStream<Uint8Array> {
    return Readable.toWeb(this.res) as ReadableStream<Uint8Array>;
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    const b = await this.buffer();
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
  }

  async text(): Promise<string> {
    return (await this.buffer()).toString("utf8");
  }

  private buffer(): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      this.res.on("data", (c: Buffer) => parts.push(c));
      this.res.once("end", () => resolve(parts.length === 1 ? parts[0]! : Buffer.concat(parts)));
      this.res.once("error", reject);
      this.res.once("aborted", () => reject(Object.assign(new Error("the response was cut short"), { code: "ECONNRESET" })));
    });
  }
}

/**
 * One HTTP request to corral with node:http, answered as soon as the
 * response starts. `apiUrl` is http(s)://host:port or unix:/path/to/socket
 * (corrald --socket, like Docker's). Not Node's fetch: its web streams
 * cost ~0.4 ms a request on the machines we measure on, twice per
 * create-and-run, most of what a warm-pool claim costs.
 */
export function send(apiUrl: string, target: string, o: Outgoing): Sending {
  const where = locate(apiUrl);
  const headers: Record<string, string | number> = { ...o.headers };
  const fixed = typeof o.body === "string" ? Buffer.from(o.body) : o.body instanceof Uint8Array ? o.body : undefined;
  if (fixed) headers["content-length"] = fixed.length;
  let req!: http.ClientRequest;
  let res: http.IncomingMessage | undefined;
  const reply = new Promise<Reply>((resolve, reject) => {
    req = (where.tls ? https : http).request({ ...where.options, path: `${where.prefix}${target}`, method: o.method, headers }, (r) => {
      res = r;
      resolve(new Reply(r));
    });
    req.on("error", reject);
    if (fixed || o.body === undefined) req.end(fixed);
    else {
      const source = o.body instanceof ReadableStream ? Readable.fromWeb(o.body as import("node:stream/web").ReadableStream) : Readable.from(o.body as AsyncIterable<Uint8Array>);
      source.on("error", (e) => req.destroy(e));
      source.pipe(req);
    }
  });
  return {
    reply,
    cancel(e) {
      // Before the response, the request's error rejects `reply`; after it, the body's readers get e.
      if (res && !res.complete) res.destroy(e);
      req.destroy(e);
    },
  };
}

interface Location {
  readonly tls: boolean;
  readonly options: http.RequestOptions;
  /** A base URL's own path, before every API path. */
  readonly prefix: string;
}

const located = new Map<string, Location>();

function locate(apiUrl: string): Location {
  let l = located.get(apiUrl);
  if (l) return l;
  if (apiUrl.startsWith("unix:")) {
    const socketPath = apiUrl.slice("unix:".length).replace(/^\/\/(?=\/)/, "");
    l = { tls: false, options: { socketPath, agent: agents.http }, prefix: "" };
  } else {
    const u = new URL(apiUrl);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new TypeError(`corral's apiUrl is http://, https:// or unix:, got ${apiUrl}`);
    const tls = u.protocol === "https:";
    l = {
      tls,
      options: { host: u.hostname.replace(/^\[|\]$/g, ""), port: u.port || (tls ? 443 : 80), agent: tls ? agents.https : agents.http },
      prefix: u.pathname.replace(/\/+$/, ""),
    };
  }
  located.set(apiUrl, l);
  return l;
}
