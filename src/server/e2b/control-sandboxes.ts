import type { FastifyInstance, FastifyRequest } from "fastify";
import { ConflictError, InvalidArgumentError, NotFoundError } from "../../core/errors.js";
import type { SandboxInfo } from "../../runtime/sandboxes.js";
import { apiKeyOf } from "../context.js";
import type { AccessTokens } from "./access-token.js";
import { E2bUnsupportedError } from "./errors.js";
import { page, parseListQuery } from "./list-query.js";
import { egressFor, readCreateNetwork, readEgress } from "./network-rules.js";
import { corralTemplate, detailJson, listedJson, sandboxJson, type PortHosts } from "./sandbox-json.js";
import { networkPolicy } from "../../core/network-spec.js";
import type { Sandboxes } from "../../runtime/sandboxes.js";

/** E2B's default timeout when a create or connect names none, seconds (NewSandboxV2, ConnectSandboxV2). */
export const DEFAULT_TIMEOUT_S = 300;
/** corral's longest timeout (the spec's bound), seconds. */
const MAX_TIMEOUT_S = 30 * 24 * 3600;

export interface ControlEnv {
  readonly sandboxes: Sandboxes;
  readonly tokens: AccessTokens;
  /** The backend E2B sandboxes are made with (the daemon's --e2b-backend). */
  readonly backend: "container" | "vm" | "gvisor";
  /** The network when a create says nothing of internet access. */
  readonly defaultNetwork: "none" | "nat";
  /** corrald's port URLs, for E2B's domain (getHost) and traffic token; absent: none (a daemon on a unix socket). */
  readonly ports?: PortHosts;
}

type Body = Record<string, unknown>;
type WithId = { Params: { id: string } };

/** The tenant of a control-plane request: a corral API key is the E2B API key (X-API-KEY, or Authorization: Bearer). */
export function tenantOf(env: ControlEnv, req: FastifyRequest): string {
  return env.sandboxes.tenants.authenticate(apiKeyOf(req.headers));
}

/**
 * E2B's sandbox API (`E2B_API_URL`) on corral's runtime: each call is one
 * call of the Sandboxes façade within the key's tenant, so quotas,
 * another tenant's 404 and the reaper apply as for corral's own API.
 */
export function registerSandboxRoutes(app: FastifyInstance, env: ControlEnv): void {
  app.post<{ Body: Body }>("/v2/sandboxes", async (req, reply) => {
    const tenant = tenantOf(env, req);
    const b = objectBody(req.body);
    refuseUnsupported(b);
    const templateID = b["templateID"];
    if (typeof templateID !== "string" || !templateID) throw new InvalidArgumentError("templateID is required");
    const timeout = seconds(b["timeout"], "timeout") ?? DEFAULT_TIMEOUT_S;
    const envVars = stringRecord(b["envVars"], "envVars");
    const metadata = stringRecord(b["metadata"], "metadata");
    const internet = internetOf(b);
    const egress = readCreateNetwork(b["network"]);
    let sb: SandboxInfo;
    if (env.sandboxes.listSnapshots({ tenant }).some((s) => s.name === templateID)) {
      if (Object.keys(envVars).length || Object.keys(metadata).length || internet !== undefined || egress) {
        throw new E2bUnsupportedError(
          "a sandbox made from a snapshot keeps the snapshot's environment, metadata and network: corral cannot set envVars, metadata, allow_internet_access or network on it",
        );
      }
      sb = await env.sandboxes.restoreSnapshot(templateID, { tenant });
      sb = { ...sb, ...env.sandboxes.setTimeout(sb.id, timeout, { tenant }) };
    } else {
      sb = await env.sandboxes.create(
        {
          template: corralTemplate(templateID),
          backend: env.backend,
          env: envVars,
          labels: metadata,
          lifetime: { timeoutSeconds: timeout },
          // Internet access is corral's nat network (outbound through its bridge), under
          // the egress lists (network-rules.ts); all unsaid, the daemon's default.
          network: internet === undefined && !egress ? env.defaultNetwork : egressFor(internet ?? true, egress),
        },
        { tenant },
      );
    }
    req.log.info({ sandbox: sb.id, tenant, template: sb.spec.template }, "e2b sandbox created");
    return reply.code(201).send(sandboxJson(sb, env.tokens, env.ports));
  });

  app.get<{ Querystring: Record<string, string | string[] | undefined> }>("/v2/sandboxes", async (req, reply) => {
    const tenant = tenantOf(env, req);
    const q = parseListQuery(req.query);
    const { items, next } = page(await env.sandboxes.list({ tenant }), q);
    if (next) reply.header("x-next-token", next);
    return items.map(listedJson);
  });

  app.get<WithId>("/sandboxes/:id", async (req) => {
    const tenant = tenantOf(env, req);
    return detailJson(await env.sandboxes.get(byId(env, req.params.id, tenant).id, { tenant }), env.tokens, env.ports);
  });

  app.delete<WithId>("/sandboxes/:id", async (req, reply) => {
    const tenant = tenantOf(env, req);
    await env.sandboxes.destroy(byId(env, req.params.id, tenant).id, { tenant }, "killed through the E2B API");
    return reply.code(204).send();
  });

  app.post<WithId & { Body: Body }>("/sandboxes/:id/timeout", async (req, reply) => {
    const tenant = tenantOf(env, req);
    const t = seconds(objectBody(req.body)["timeout"], "timeout");
    if (t === undefined) throw new InvalidArgumentError("timeout is required");
    env.sandboxes.setTimeout(byId(env, req.params.id, tenant).id, t, { tenant });
    return reply.code(204).send();
  });

  // Connect: a running sandbox's timeout is extended (never shortened) to
  // `timeout` from now; a stopped (E2B: paused) persistent one starts
  // again from its disk when the caller accepts losing its memory.
  app.post<WithId & { Body: Body }>("/v2/sandboxes/:id/connect", async (req, reply) => {
    const tenant = tenantOf(env, req);
    const b = objectBody(req.body);
    const t = seconds(b["timeout"], "timeout") ?? DEFAULT_TIMEOUT_S;
    const rec = byId(env, req.params.id, tenant);
    let status = 200;
    if (rec.state === "stopped") {
      if (b["memory"] !== false) {
        throw new E2bUnsupportedError(
          `sandbox ${rec.id} is stopped and corral keeps no memory of it: connect with onResume "reboot" to start it again from its disk`,
        );
      }
      await env.sandboxes.start(rec.id, { tenant });
      status = 201;
    }
    const wanted = Date.now() + t * 1000;
    // A sandbox without a timeout (made persistent through corral) keeps having none.
    if (rec.expiresAt !== null && Date.parse(rec.expiresAt) < wanted) env.sandboxes.setTimeout(rec.id, t, { tenant });
    return reply.code(status).send(sandboxJson(env.sandboxes.record(rec.id, { tenant }), env.tokens, env.ports));
  });

  // Pause: corral keeps no memory of a sandbox it stops. Without memory
  // (keepMemory: false) a persistent sandbox is stopped, its disk kept; an
  // ephemeral one has its files in memory and cannot be.
  app.post<WithId & { Body: Body }>("/sandboxes/:id/pause", async (req, reply) => {
    const tenant = tenantOf(env, req);
    const rec = byId(env, req.params.id, tenant);
    if (objectBody(req.body)["memory"] !== false) {
      throw new E2bUnsupportedError("corral cannot keep a paused sandbox's memory: pause with keepMemory: false (a persistent sandbox keeps its disk, its processes end)");
    }
    if (rec.state === "stopped") throw new ConflictError(`sandbox ${rec.id} is already paused`);
    try {
      await env.sandboxes.stop(rec.id, { tenant });
    } catch (e) {
      if (e instanceof ConflictError) throw new E2bUnsupportedError(e.message);
      throw e;
    }
    return reply.code(204).send();
  });

  app.get<WithId>("/sandboxes/:id/metrics", async (req) => {
    const tenant = tenantOf(env, req);
    const rec = byId(env, req.params.id, tenant);
    if (rec.state !== "running") return [];
    const s = await env.sandboxes.stats(rec.id, { tenant });
    const now = Date.now();
    const cores = rec.spec.resources.vcpus;
    // Over its life so far: one sample is all corral keeps (no history).
    const cpuUsedPct = (100 * s.cpuNanos) / 1e6 / Math.max(1, now - Date.parse(rec.createdAt)) / cores;
    return [
      {
        timestamp: new Date(now).toISOString(),
        timestampUnix: Math.floor(now / 1000),
        cpuCount: Math.max(1, Math.ceil(cores)),
        cpuUsedPct: Math.round(cpuUsedPct * 100) / 100,
        memUsed: s.memoryBytes,
        memTotal: rec.spec.resources.memory,
        memCache: 0,
        // Not measured per sandbox (an ephemeral one's writes are in its tmpfs): 0 used of its limit.
        diskUsed: 0,
        diskTotal: rec.spec.resources.disk,
      },
    ];
  });

  // updateNetwork: the egress lists replace the sandbox's, at once (corral net set); its mode stays.
  app.put<WithId>("/sandboxes/:id/network", async (req, reply) => {
    const tenant = tenantOf(env, req);
    const r = byId(env, req.params.id, tenant);
    const b = objectBody(req.body);
    const internet = internetOf(b);
    const now = networkPolicy(r.spec.network);
    if (now.mode === "none") {
      if (internet === false && !readEgress(b, "body")) return reply.code(204).send();
      throw new ConflictError(`sandbox ${r.id} was made without internet access, and corral keeps a sandbox's network mode: create one with allowInternetAccess`);
    }
    const want = egressFor(internet ?? true, readEgress(b, "body"));
    const egress = typeof want === "object" ? want.egress : want === "nat" ? { deny: [] } : { allow: [], deny: [] };
    await env.sandboxes.setNetwork(r.id, { mode: "nat", egress, networks: [...now.networks], ports: [...now.ports] }, { tenant });
    return reply.code(204).send();
  });
}

/** A sandbox by id only (E2B names none), within the tenant. */
export function byId(env: ControlEnv, id: string, tenant: string) {
  const r = env.sandboxes.record(id, { tenant });
  if (r.id !== id) throw new NotFoundError("sandbox", id);
  return r;
}

export function objectBody(b: unknown): Body {
  if (b === undefined || b === null) return {};
  if (typeof b !== "object" || Array.isArray(b)) throw new InvalidArgumentError("the body must be a JSON object");
  return b as Body;
}

/** E2B's timeouts are whole seconds; corral's run from 1 s (0 is taken as 1: at once) to 30 days. */
export function seconds(v: unknown, what: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > MAX_TIMEOUT_S) {
    throw new InvalidArgumentError(`${what} must be a whole number of seconds from 0 to ${MAX_TIMEOUT_S}, got ${JSON.stringify(v)}`);
  }
  return Math.max(1, v);
}

function internetOf(b: Body): boolean | undefined {
  const v = b["allow_internet_access"];
  if (v !== undefined && v !== null && typeof v !== "boolean") throw new InvalidArgumentError("allow_internet_access must be a boolean");
  return v ?? undefined;
}

function stringRecord(v: unknown, what: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== "object" || Array.isArray(v) || Object.values(v).some((x) => typeof x !== "string")) {
    throw new InvalidArgumentError(`${what} must be an object of strings`);
  }
  return v as Record<string, string>;
}

/** What an E2B create may ask that corral cannot do: refused by name (501), never dropped. */
function refuseUnsupported(b: Body): void {
  const why: string[] = [];
  if (b["autoPause"] === true) why.push("autoPause (corral removes a sandbox at its timeout; it cannot pause it)");
  if (b["autoResume"] && (b["autoResume"] as { enabled?: unknown }).enabled === true) why.push("autoResume");
  if (b["mcp"]) why.push("mcp (no MCP gateway)");
  if (Array.isArray(b["volumeMounts"]) && b["volumeMounts"].length) why.push("volumeMounts (no volumes)");
  if (b["iam"]) why.push("iam (no workload tokens)");
  if (why.length) throw new E2bUnsupportedError(`corral cannot create this sandbox: ${why.join("; ")}`);
}
