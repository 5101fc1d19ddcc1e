import { randomBytes } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { InvalidArgumentError, NotFoundError } from "../../core/errors.js";
import { byId, objectBody, seconds, tenantOf, DEFAULT_TIMEOUT_S, type ControlEnv } from "./control-sandboxes.js";
import { toE2bHttpError } from "./errors.js";
import { sandboxJson } from "./sandbox-json.js";

/** Forks one request may ask for. */
export const MAX_FORKS = 16;
/** Snapshots one page of GET /snapshots holds at most, and unless told. */
const MAX_SNAPSHOT_PAGE = 100;

type WithId = { Params: { id: string } };

/**
 * E2B's snapshots on corral's: a snapshot of a running microVM (memory,
 * devices, disk; the VM runs on), named as corral names snapshots, from
 * which Sandbox.create(name) restores new sandboxes; a fork is a snapshot
 * restored `count` times and then deleted. Containers cannot be
 * snapshotted (corral's 409, as its own API says it).
 */
export function registerSnapshotRoutes(app: FastifyInstance, env: ControlEnv): void {
  app.post<WithId & { Body: Record<string, unknown> }>("/sandboxes/:id/snapshots", async (req, reply) => {
    const tenant = tenantOf(env, req);
    const rec = byId(env, req.params.id, tenant);
    const asked = objectBody(req.body)["name"];
    if (asked !== undefined && typeof asked !== "string") throw new InvalidArgumentError("name must be a string");
    const name = asked ?? `snap-${rec.id}-${randomBytes(3).toString("hex")}`;
    const s = await env.sandboxes.snapshot(rec.id, name, { tenant });
    return reply.code(201).send({ snapshotID: s.name, names: [s.name] });
  });

  app.get<{ Querystring: Record<string, string | undefined> }>("/snapshots", async (req, reply) => {
    const tenant = tenantOf(env, req);
    const { sandboxID, name, nextToken } = req.query;
    const limit = req.query["limit"] === undefined ? MAX_SNAPSHOT_PAGE : Number(req.query["limit"]);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_SNAPSHOT_PAGE) throw new InvalidArgumentError(`limit must be a whole number from 1 to ${MAX_SNAPSHOT_PAGE}`);
    // A snapshot records its sandbox's name: the id's sandbox, while it is there, gives it.
    const source = sandboxID === undefined ? undefined : sourceName(env, sandboxID, tenant);
    const all = env.sandboxes
      .listSnapshots({ tenant })
      .filter((s) => (sandboxID === undefined || s.source === source) && (name === undefined || s.name === name) && (nextToken === undefined || s.name > nextToken));
    const items = all.slice(0, limit);
    if (all.length > limit) reply.header("x-next-token", items[items.length - 1]!.name);
    return items.map((s) => ({ snapshotID: s.name, names: [s.name] }));
  });

  app.delete<{ Params: { templateID: string } }>("/templates/:templateID", async (req, reply) => {
    const tenant = tenantOf(env, req);
    if (!env.sandboxes.listSnapshots({ tenant }).some((s) => s.name === req.params.templateID)) {
      throw new NotFoundError("snapshot", req.params.templateID);
    }
    await env.sandboxes.deleteSnapshot(req.params.templateID, { tenant });
    return reply.code(204).send();
  });

  app.post<WithId & { Body: Record<string, unknown> }>("/sandboxes/:id/fork", async (req, reply) => {
    const tenant = tenantOf(env, req);
    const rec = byId(env, req.params.id, tenant);
    const b = objectBody(req.body);
    const timeout = seconds(b["timeout"], "timeout") ?? DEFAULT_TIMEOUT_S;
    const count = b["count"] === undefined ? 1 : b["count"];
    if (typeof count !== "number" || !Number.isInteger(count) || count < 1 || count > MAX_FORKS) {
      throw new InvalidArgumentError(`count must be a whole number from 1 to ${MAX_FORKS}`);
    }
    const name = `fork-${rec.id}-${randomBytes(4).toString("hex")}`;
    await env.sandboxes.snapshot(rec.id, name, { tenant });
    const results: unknown[] = [];
    try {
      for (let i = 0; i < count; i++) {
        try {
          const sb = await env.sandboxes.restoreSnapshot(name, { tenant });
          results.push({ sandbox: sandboxJson(env.sandboxes.setTimeout(sb.id, timeout, { tenant }), env.tokens, env.ports) });
        } catch (e) {
          results.push({ error: toE2bHttpError(e).body });
        }
      }
    } finally {
      await env.sandboxes.deleteSnapshot(name, { tenant });
    }
    return reply.code(201).send(results);
  });
}

function sourceName(env: ControlEnv, id: string, tenant: string): string {
  try {
    return byId(env, id, tenant).name;
  } catch (e) {
    if (e instanceof NotFoundError) return id;
    throw e;
  }
}
