import path from "node:path";
import { PassThrough, type Readable } from "node:stream";
import zlib from "node:zlib";
import { Busboy } from "@fastify/busboy";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { AgentClient } from "../../agent/client.js";
import { CorralError, InvalidArgumentError, SandboxOperationError } from "../../core/errors.js";
import { resolvePath, type SandboxUser } from "./accounts.js";
import { basicAuthUser, envdTarget, requestUser, type AgentLease, type EnvdEnv, type EnvdTarget } from "./envd-target.js";
import { giveTo, missingDirs } from "./ownership.js";

/** Files one multipart upload may carry. */
export const MAX_UPLOAD_FILES = 1000;
/** What is read and dropped of an upload the daemon gave up on, so the client reads the error (bytes, ms). */
const DRAIN_BYTES = 256 * 1024 * 1024;
const DRAIN_MS = 2000;

interface FilesQuery {
  path?: string;
  username?: string;
}

/** A file envd reports as written. */
interface Written {
  readonly path: string;
  readonly name: string;
  readonly type: "file";
}

/**
 * envd's HTTP side: /health, /envs and /files (GET streams a file out;
 * POST writes files from a multipart form, or one from the raw body,
 * gzip'ed or not). The sandbox, its token and the user are checked as for
 * the RPCs (envd-target.ts); files are written through the agent and
 * given to the user with the directories made for them, as envd does.
 */
export function registerEnvdRoutes(app: FastifyInstance, env: EnvdEnv): void {
  // Bodies reach the handlers as they come (a file streams to the agent); a
  // type the handler does not take is its 400, as envd's, not fastify's 415.
  app.addContentTypeParser("*", (_req, _payload, done) => done(null));
  const target = (req: FastifyRequest) => envdTarget(env, (h) => headerOf(req, h));

  app.get("/health", async (req, reply) => {
    target(req);
    return reply.code(204).send();
  });

  app.get("/envs", async (req) => target(req).record.spec.env);

  app.get<{ Querystring: FilesQuery }>("/files", async (req, reply) => {
    const t = target(req);
    const lease = t.lease();
    try {
      const user = await userOf(env, t, lease, req);
      const p = resolvePath(req.query.path ?? "", user);
      const agent = await lease.get();
      const st = await agent.stat(p).catch((e: unknown) => {
        if (e instanceof SandboxOperationError && e.errno === "ENOENT") throw new CorralError("file_not_found", `path '${p}' does not exist`, 404);
        throw e;
      });
      if (st.type === "dir") throw new InvalidArgumentError(`path '${p}' is a directory`);
      const stream: Readable = agent.readFile(p);
      const leased = lease;
      stream.once("close", () => leased.close());
      return reply
        .type("application/octet-stream")
        .header("content-disposition", `attachment; filename=${JSON.stringify(path.posix.basename(p))}`)
        .send(stream);
    } catch (e) {
      lease.close();
      throw e;
    }
  });

  app.post<{ Querystring: FilesQuery }>("/files", async (req, reply) => {
    const t = target(req);
    const lease = t.lease();
    try {
      const user = await userOf(env, t, lease, req);
      const encoding = headerOf(req, "content-encoding");
      if (encoding && encoding !== "gzip" && encoding !== "identity") throw new InvalidArgumentError(`Content-Encoding ${encoding} is not supported: send gzip or identity`);
      const body: Readable = encoding === "gzip" ? req.raw.pipe(zlib.createGunzip()) : req.raw;
      const type = (headerOf(req, "content-type") ?? "").split(";")[0]!.trim().toLowerCase();
      // What the writes made, given to the user at the end in one chown (one exec for many files).
      const made: string[] = [];
      const write = (p: string, source: Readable) => writeAs(lease, user, p, source, made);
      let written: Written[];
      if (type === "application/octet-stream") {
        if (req.query.path === undefined) throw new InvalidArgumentError("path query parameter is required for raw body upload");
        written = [await write(resolvePath(req.query.path, user), body)];
      } else if (type.startsWith("multipart/")) {
        written = await multipart(req, body, user, write);
      } else {
        throw new InvalidArgumentError(`unsupported content type: ${type || "(none)"}, expected multipart/form-data or application/octet-stream`);
      }
      await giveTo(env.sandboxes, t.record.id, t.record.tenant, user, made);
      return reply.code(200).send(written);
    } catch (e) {
      await drain(req.raw);
      throw e;
    } finally {
      lease.close();
    }
  });
}

/** The user of a /files request: `username`, else the Basic auth name, else the sandbox's default. */
function userOf(env: EnvdEnv, t: EnvdTarget, lease: AgentLease, req: FastifyRequest<{ Querystring: FilesQuery }>): Promise<SandboxUser> {
  return requestUser(env, t, lease, req.query.username ?? basicAuthUser(headerOf(req, "authorization")));
}

/**
 * Writes one file as envd's processFile does: the directories on its way
 * made, and they and the file (created or truncated) added to `made`, to
 * be given to the user. A directory there is a 400; ENOSPC the agent's 507.
 */
async function writeAs(lease: AgentLease, user: SandboxUser, p: string, source: Readable, made: string[]): Promise<Written> {
  const agent: AgentClient = await lease.get();
  const dirs = user.uid === 0 ? [] : await missingDirs(agent, path.posix.dirname(p));
  const existing = await agent.stat(p).catch(() => undefined);
  if (existing?.type === "dir") throw new InvalidArgumentError(`path is a directory: ${p}`);
  // Read through a PassThrough: a failed write then destroys it, not the request (whose answer is still to come).
  const body = new PassThrough();
  source.pipe(body);
  source.once("error", (e) => body.destroy(e));
  // pipe() passes on neither an error nor a cut: an upload that ends short must fail the write, not leave it waiting.
  source.once("close", () => {
    if (!source.readableEnded) body.destroy(new InvalidArgumentError("the upload ended before its last byte"));
  });
  try {
    await agent.writeFile(p, body, { mkdirs: true, mode: 0o644 });
  } finally {
    source.unpipe(body);
  }
  if (user.uid !== 0) made.push(...dirs, p);
  return { path: p, name: path.posix.basename(p), type: "file" };
}

/**
 * The "file" parts of a multipart form, written one after another as
 * they arrive (busboy holds the next part back while one is written);
 * each part's file name is its path, unless the request names one.
 */
function multipart(req: FastifyRequest<{ Querystring: FilesQuery }>, body: Readable, user: SandboxUser, write: (p: string, s: Readable) => Promise<Written>): Promise<Written[]> {
  return new Promise((resolve, reject) => {
    const written: Written[] = [];
    const seen = new Set<string>();
    let failed: unknown;
    let chain = Promise.resolve();
    const bb = new Busboy({
      headers: { ...req.headers, "content-type": headerOf(req, "content-type") ?? "" },
      preservePath: true,
      limits: { files: MAX_UPLOAD_FILES, fields: 100, fieldSize: 64 * 1024 },
    });
    const fail = (e: unknown) => {
      failed ??= e;
      body.unpipe(bb);
      reject(e);
    };
    bb.on("file", (field, stream, filename) => {
      if (field !== "file" || failed) {
        stream.resume();
        return;
      }
      chain = chain.then(async () => {
        if (failed) return void stream.resume();
        try {
          const p = resolvePath(req.query.path ?? filename, user);
          if (seen.has(p)) throw new InvalidArgumentError(`you cannot upload multiple files to the same path '${p}' in one upload request, only the first specified file was uploaded`);
          seen.add(p);
          written.push(await write(p, stream));
        } catch (e) {
          stream.resume();
          fail(e);
        }
      });
    });
    bb.on("filesLimit", () => fail(new InvalidArgumentError(`an upload may carry at most ${MAX_UPLOAD_FILES} files`)));
    bb.on("error", (e: Error) => fail(new InvalidArgumentError(`error reading form: ${e.message}`)));
    bb.on("finish", () => void chain.then(() => (failed ? undefined : resolve(written))));
    body.on("error", (e) => fail(new InvalidArgumentError(`error reading the upload: ${e.message}`)));
    body.pipe(bb);
  });
}

/** Reads and drops what is left of a request the daemon gave up on, for a bounded time and size, so the client reads the answer. */
function drain(raw: Readable): Promise<void> {
  if (raw.readableEnded || raw.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    let bytes = 0;
    const done = () => {
      clearTimeout(timer);
      raw.off("data", count);
      resolve();
    };
    const count = (c: Buffer) => {
      bytes += c.length;
      if (bytes > DRAIN_BYTES) done();
    };
    const timer = setTimeout(done, DRAIN_MS);
    raw.on("data", count);
    raw.once("end", done);
    raw.once("close", done);
    raw.resume();
  });
}

function headerOf(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
