import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import fs from "node:fs";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import path from "node:path";
import type { Duplex } from "node:stream";
import { networkPolicy } from "../core/network-spec.js";
import type { Sandboxes, SandboxRecord } from "../runtime/sandboxes.js";
import { apiKeyOf } from "./context.js";

/** The domain of port URLs when none is given: browsers and curl resolve *.localhost to loopback. */
export const DEFAULT_PORT_DOMAIN = "localhost";
const TOKEN_PARAM = "corral_token";
const TOKEN_HEADER = "x-corral-token";
/** E2B's header for a sandbox's traffic token (its trafficAccessToken, which corrald's E2B layer hands out as this token). */
const E2B_TOKEN_HEADER = "e2b-traffic-access-token";
const HOST_PATTERN = /^(\d{1,5})-([0-9a-f]{16})\.(.+?)(?::\d+)?$/;
/** Request headers that carry corral's credentials: never passed to the sandbox's server. */
const OWN_HEADERS = new Set(["authorization", "x-api-key", TOKEN_HEADER, E2B_TOKEN_HEADER]);

/** A port URL's parts, from a Host header: `8080-<id>.<domain>[:port]`. */
export function parsePortHost(host: string | undefined, domain: string): { port: number; id: string } | undefined {
  const m = host ? HOST_PATTERN.exec(host.toLowerCase()) : null;
  if (!m || m[3] !== domain) return undefined;
  const port = Number(m[1]);
  return port >= 1 && port <= 65535 ? { port, id: m[2]! } : undefined;
}

/**
 * Serves a sandbox's ports on the daemon's own listener, routed by the
 * Host header (`http://8080-<id>.localhost:<daemon port>/`): HTTP requests
 * and WebSocket (any) upgrades, streamed both ways, each over a TCP stream
 * the sandbox's agent opens to that port on the sandbox's loopback
 * (AgentClient.connectTcp), so it works for network "none" and for VMs.
 * Allowed: a port the spec makes public; the key of the sandbox's tenant
 * (Authorization or X-API-Key); or the sandbox's access token (an HMAC of
 * its id under a key of the state dir), given once as ?corral_token=
 * (then kept in a cookie for that host) or as X-Corral-Token (or E2B's
 * e2b-traffic-access-token). corral's
 * credentials are removed before the request reaches the sandbox.
 */
export class PortProxy {
  private secret: Buffer | undefined;

  constructor(
    private readonly sandboxes: Sandboxes,
    readonly domain: string = DEFAULT_PORT_DOMAIN,
  ) {}

  /** The access token of a sandbox's ports. */
  token(id: string): string {
    this.secret ??= loadSecret(path.join(this.sandboxes.stateDir, "port-token.key"));
    return createHmac("sha256", this.secret).update(id).digest("base64url").slice(0, 32);
  }

  /** The daemon's TCP port, once it listens (the port of every URL). */
  listenPort: number | undefined;

  /** The host part after `PORT-ID.` of a port URL (E2B's sandbox domain), or undefined while no TCP port is served. */
  hostDomain(): string | undefined {
    return this.listenPort ? `${this.domain}:${this.listenPort}` : undefined;
  }

  url(id: string, port: number): string {
    return `http://${port}-${id}.${this.domain}${this.listenPort ? `:${this.listenPort}` : ""}/`;
  }

  /** Whether a request is for a sandbox's port (it is then this proxy's). */
  claims(req: IncomingMessage): boolean {
    return parsePortHost(req.headers.host, this.domain) !== undefined;
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = await this.target(req).catch((e: Error) => e);
    if (target instanceof Error) return refuse(res, target);
    const { duplex, close, setCookie } = target;
    const headers = forwardHeaders(req);
    const upstream = http.request({ createConnection: () => duplex, method: req.method, path: stripToken(req.url ?? "/"), headers });
    upstream.on("response", (r) => {
      const raw = [...r.rawHeaders];
      if (setCookie) raw.push("set-cookie", setCookie);
      res.writeHead(r.statusCode ?? 502, r.statusMessage, raw);
      r.pipe(res);
    });
    upstream.on("error", (e) => (res.headersSent ? res.destroy() : refuse(res, Object.assign(e, { status: 502 }))));
    res.on("close", close);
    req.pipe(upstream);
  }

  /** A WebSocket (or any) upgrade: the request head is passed on, then bytes both ways. */
  async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on("error", () => {});
    const target = await this.target(req).catch((e: Error) => e);
    if (target instanceof Error) {
      const status = (target as { status?: number }).status ?? 502;
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? "Error"}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${target.message}\n`);
      return;
    }
    const { duplex, close } = target;
    const lines = [`${req.method} ${stripToken(req.url ?? "/")} HTTP/1.1`];
    const h = forwardHeaders(req);
    for (let i = 0; i < h.length; i += 2) lines.push(`${h[i]}: ${h[i + 1]}`);
    duplex.write(`${lines.join("\r\n")}\r\n\r\n`);
    if (head.length) duplex.write(head);
    socket.pipe(duplex).pipe(socket);
    socket.on("close", close);
    duplex.on("close", () => socket.destroy());
    duplex.on("error", () => socket.destroy());
  }

  /** The sandbox's port, authorised, as a stream; `close` lets go of its agent connection. */
  private async target(req: IncomingMessage): Promise<{ duplex: Duplex; close: () => void; setCookie?: string }> {
    const p = parsePortHost(req.headers.host, this.domain)!;
    let r: SandboxRecord;
    try {
      r = this.sandboxes.running(p.id);
    } catch {
      throw Object.assign(new Error(`no running sandbox ${p.id}`), { status: 404 });
    }
    const setCookie = this.authorise(req, r, p.port);
    const client = await this.sandboxes.agent(r.id);
    try {
      const duplex = await client.connectTcp(p.port);
      let closed = false;
      const close = () => {
        if (closed) return;
        closed = true;
        duplex.destroy();
        client.close();
      };
      return { duplex, close, ...(setCookie ? { setCookie } : {}) };
    } catch (e) {
      client.close();
      throw Object.assign(new Error(`port ${p.port} of sandbox ${r.id} does not answer: ${(e as Error).message}`), { status: 502 });
    }
  }

  /** Throws 401/403 unless allowed; a Set-Cookie for a token given in the URL. */
  private authorise(req: IncomingMessage, r: SandboxRecord, port: number): string | undefined {
    if (networkPolicy(r.spec.network).ports.some((x) => x.port === port && x.public)) return undefined;
    const key = apiKeyOf(req.headers);
    if (key) {
      let tenant: string;
      try {
        tenant = this.sandboxes.tenants.authenticate(key);
      } catch {
        throw Object.assign(new Error("the API key is not valid"), { status: 401 });
      }
      if (tenant !== r.tenant) throw Object.assign(new Error("the key's tenant does not own this sandbox"), { status: 403 });
      return undefined;
    }
    const want = this.token(r.id);
    const fromUrl = new URL(req.url ?? "/", "http://x").searchParams.get(TOKEN_PARAM);
    const header = req.headers[TOKEN_HEADER] ?? req.headers[E2B_TOKEN_HEADER];
    const cookie = cookieValue(req.headers.cookie, cookieName(r.id));
    const given = fromUrl ?? (typeof header === "string" ? header : undefined) ?? cookie;
    if (given === undefined) throw Object.assign(new Error("this port needs the tenant's API key or the sandbox's access token"), { status: 401 });
    if (!same(given, want)) throw Object.assign(new Error("the access token is not this sandbox's"), { status: 403 });
    return fromUrl ? `${cookieName(r.id)}=${want}; Path=/; HttpOnly; SameSite=Lax` : undefined;
  }
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const cookieName = (id: string) => `corral_token_${id}`;

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return v.join("=");
  }
  return undefined;
}

/** The request's own headers (raw, in order) without corral's credentials and cookie. */
function forwardHeaders(req: IncomingMessage): string[] {
  const out: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (OWN_HEADERS.has(lower)) continue;
    let value = raw[i + 1]!;
    if (lower === "cookie") {
      value = value
        .split(";")
        .filter((c) => !c.trim().startsWith("corral_token_"))
        .join(";")
        .trim();
      if (!value) continue;
    }
    out.push(name, value);
  }
  return out;
}

function stripToken(url: string): string {
  if (!url.includes(TOKEN_PARAM)) return url;
  const u = new URL(url, "http://x");
  u.searchParams.delete(TOKEN_PARAM);
  return `${u.pathname}${u.search}`;
}

function refuse(res: ServerResponse, e: Error): void {
  const status = (e as { status?: number }).status ?? 502;
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify({ error: { code: status === 401 ? "unauthorized" : status === 403 ? "forbidden" : status === 404 ? "not_found" : "port_unreachable", message: e.message } }));
}

/** The state dir's key for access tokens: made once, 32 random bytes, root only. */
function loadSecret(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch {
    const key = randomBytes(32);
    try {
      fs.writeFileSync(file, key, { flag: "wx", mode: 0o600 });
      return key;
    } catch {
      return fs.readFileSync(file); // another process made it first
    }
  }
}
