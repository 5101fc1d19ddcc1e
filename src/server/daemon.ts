import fs from "node:fs";
import { pino, type Logger } from "pino";
import { Sandboxes } from "../runtime/sandboxes.js";
import { parseDeclared } from "../runtime/declared-state.js";
import { buildApp } from "./app.js";
import type { E2bApp } from "./e2b/e2b-app.js";
import type { CreateRate } from "./rate-limit.js";
import type { NetworkOptions } from "../network/networks.js";

export interface DaemonOptions {
  readonly stateDir?: string;
  readonly cgroupParent?: string;
  /** Loopback TCP (port 0: any free port) or a unix socket path. */
  readonly listen: { readonly host?: string; readonly port: number } | { readonly socket: string };
  readonly bodyLimit?: number;
  readonly headersTimeoutMs?: number;
  /** How often expired sandboxes are removed, ms. */
  readonly reapIntervalMs?: number;
  readonly logger?: Logger;
  readonly validateResponses?: boolean;
  /** Tenants whose keys may change shared things: templates, pools, the store, tenants and keys. */
  readonly adminTenants?: readonly string[];
  /** Tenants that may import image archives as templates (PUT /v1/templates/{name}/oci), besides the admins. */
  readonly templateImporters?: readonly string[];
  readonly importLimit?: number;
  /** GET /metrics without a key (it names every tenant; default: an admin tenant's key). */
  readonly publicMetrics?: boolean;
  /** The quota of a tenant that has none of its own (null fields: no limit); default none. */
  readonly defaultQuota?: { readonly maxSandboxes: number | null; readonly maxMemory: number | null };
  /** Sandbox starts per tenant through the API (server/rate-limit.ts); default none. `corral daemon` sets both. */
  readonly createRate?: CreateRate;
  /** Host directories sandboxes may see through shares (runtime/shares.ts). */
  readonly allowedShares?: readonly string[];
  /**
   * The operator's declared state (runtime/declared-state.ts, rendered by
   * the NixOS module), applied on start (an unreadable or invalid file
   * stops the start) and on every reload().
   */
  readonly declaredFile?: string;
  /**
   * E2B compatibility (off unless given): E2B's sandbox and in-sandbox APIs
   * on a listener of their own (src/server/e2b/, docs/e2b.md).
   */
  readonly e2b?: {
    readonly listen: { readonly host?: string; readonly port: number };
    readonly backend?: "container" | "vm" | "gvisor";
    /** How long a polled watcher may go unpolled before it is removed (default WATCHER_IDLE_MS, 10 minutes). */
    readonly watcherIdleMs?: number;
  };
  /** The domain of sandboxes' port URLs (default localhost). */
  readonly portDomain?: string;
  /** Sandbox networking: address range, resolver upstream (network/networks.ts). */
  readonly network?: NetworkOptions;
  /** The network of a sandbox whose spec names none (default "none"). */
  readonly defaultNetwork?: "none" | "nat";
}

export interface Daemon {
  /** Base URL (http://host:port) or the socket path. */
  readonly url: string;
  /** The E2B listener's base URL (E2B_API_URL and E2B_SANDBOX_URL), when it is on. */
  readonly e2bUrl: string | undefined;
  readonly sandboxes: Sandboxes;
  /** Stops serving; sandboxes keep running. */
  close(): Promise<void>;
  /**
   * Applies the declared state file again (SIGHUP, `systemctl reload`);
   * one application at a time. An unreadable or invalid file is logged and
   * changes nothing. Resolves once applied.
   */
  reload(): Promise<void>;
}

/**
 * corrald: opens the state (reconciling whatever a crash left), serves the
 * API, and reaps expired sandboxes. Stopping it leaves sandboxes running; a
 * new daemon on the same state dir takes them over.
 */
export async function startDaemon(o: DaemonOptions): Promise<Daemon> {
  const logger = o.logger ?? pino({ level: process.env["CORRAL_LOG_LEVEL"] ?? "info" });
  const sandboxes = await Sandboxes.open({
    ...(o.stateDir ? { stateDir: o.stateDir } : {}),
    ...(o.cgroupParent ? { cgroupParent: o.cgroupParent } : {}),
    ...(o.allowedShares ? { allowedShares: o.allowedShares } : {}),
    // Four container slots made ahead of need once the network is up: a create with nat then only moves its link.
    network: { spares: 4, ...o.network },
    longLived: true,
    // One daemon per state dir: a second exits with the lock's one-line error (state-dir-lock.ts).
    lock: true,
  });
  if (o.defaultQuota) sandboxes.setDefaultQuota(o.defaultQuota);
  // One application of the declared state at a time (start, SIGHUP).
  let applying: Promise<void> = Promise.resolve();
  const applyDeclared = async () => {
    if (!o.declaredFile) return;
    const state = parseDeclared(await fs.promises.readFile(o.declaredFile, "utf8"));
    const report = await sandboxes.applyDeclared(state, o.allowedShares ?? []);
    for (const e of report.errors) logger.error({ sandbox: e.name, err: e.message }, "declared sandbox not applied");
    logger.info({ file: o.declaredFile, ...report, errors: report.errors.length }, "declared state applied");
  };
  try {
    await applyDeclared();
  } catch (e) {
    sandboxes.close();
    throw e;
  }
  const { app, ctx } = buildApp({
    sandboxes,
    logger,
    ...(o.bodyLimit ? { bodyLimit: o.bodyLimit } : {}),
    ...(o.headersTimeoutMs ? { headersTimeoutMs: o.headersTimeoutMs } : {}),
    ...(o.validateResponses ? { validateResponses: true } : {}),
    ...(o.adminTenants ? { adminTenants: o.adminTenants } : {}),
    ...(o.templateImporters ? { templateImporters: o.templateImporters } : {}),
    ...(o.importLimit ? { importLimit: o.importLimit } : {}),
    ...(o.publicMetrics ? { publicMetrics: true } : {}),
    ...(o.createRate ? { createRate: o.createRate } : {}),
    ...(o.portDomain ? { portDomain: o.portDomain } : {}),
    ...(o.defaultNetwork ? { defaultNetwork: o.defaultNetwork } : {}),
  });
  let url: string;
  try {
    if ("socket" in o.listen) {
      fs.rmSync(o.listen.socket, { force: true });
      await app.listen({ path: o.listen.socket });
      fs.chmodSync(o.listen.socket, 0o660);
      url = o.listen.socket;
    } else {
      url = await app.listen({ host: o.listen.host ?? "127.0.0.1", port: o.listen.port });
      if (ctx.portProxy) ctx.portProxy.listenPort = Number(new URL(url).port);
    }
  } catch (e) {
    await app.close().catch(() => {});
    await sandboxes.releaseNetworkSpares().catch(() => {});
    sandboxes.close();
    throw e;
  }
  let e2b: E2bApp | undefined;
  let e2bUrl: string | undefined;
  if (o.e2b) {
    try {
      // Loaded only when asked for: Connect and the generated envd code stay out of a daemon without it.
      const { buildE2bApp } = await import("./e2b/e2b-app.js");
      e2b = buildE2bApp({
        sandboxes,
        logger,
        ...(o.e2b.backend ? { backend: o.e2b.backend } : {}),
        ...(o.e2b.watcherIdleMs ? { watcherIdleMs: o.e2b.watcherIdleMs } : {}),
        ...(o.defaultNetwork ? { defaultNetwork: o.defaultNetwork } : {}),
        ...(o.bodyLimit ? { bodyLimit: o.bodyLimit } : {}),
        ...(o.headersTimeoutMs ? { headersTimeoutMs: o.headersTimeoutMs } : {}),
        ...(ctx.portProxy ? { ports: ctx.portProxy } : {}),
      });
      e2bUrl = await e2b.app.listen({ host: o.e2b.listen.host ?? "127.0.0.1", port: o.e2b.listen.port });
    } catch (e) {
      await e2b?.close();
      await app.close();
      await sandboxes.releaseNetworkSpares();
      sandboxes.close();
      throw e;
    }
    logger.info({ url: e2bUrl }, "corrald's E2B API listening");
  }
  // One housekeeping pass at a time: expired sandboxes out, pools refilled.
  let reaping = false;
  const reaper = setInterval(() => {
    if (reaping) return;
    reaping = true;
    (async () => {
      const ids = await sandboxes.reapExpired();
      if (ids.length) logger.info({ sandboxes: ids }, "removed expired sandboxes");
      const pools = await sandboxes.refillPools({ beforeStart: () => ctx.activity.lull() });
      if (pools.started || pools.removed) logger.debug(pools, "pools refilled");
    })()
      .catch((e: unknown) => logger.error({ err: e }, "housekeeping failed"))
      .finally(() => (reaping = false));
  }, o.reapIntervalMs ?? 1000);
  // The watch: a sandbox whose init, shim or hypervisor died is settled
  // within a second (500 ms passes; a container's status is cached 250 ms),
  // not left "running" until someone looks (dead-sandboxes.ts).
  let watching = false;
  const watch = setInterval(() => {
    if (watching) return;
    watching = true;
    sandboxes
      .watchDead()
      .then((settled) => settled.length && logger.warn({ sandboxes: settled }, "sandboxes found dead"))
      .catch((e: unknown) => logger.error({ err: e }, "watch failed"))
      .finally(() => (watching = false));
  }, 500);
  sandboxes.announceDaemon(url);
  logger.info({ url, stateDir: sandboxes.stateDir, cgroupParent: sandboxes.cgroupParent }, "corrald listening");
  return {
    url,
    e2bUrl,
    sandboxes,
    reload() {
      applying = applying.then(applyDeclared).catch((e: unknown) => logger.error({ err: e, file: o.declaredFile }, "declared state not applied"));
      return applying;
    },
    async close() {
      clearInterval(reaper);
      clearInterval(watch);
      await applying;
      for (const p of ctx.processes.values()) p.end();
      await e2b?.close();
      await app.close();
      while (reaping || watching) await new Promise((r) => setTimeout(r, 10));
      await sandboxes.releaseNetworkSpares();
      sandboxes.close();
    },
  };
}
