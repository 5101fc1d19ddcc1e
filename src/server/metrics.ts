import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { ServerContext } from "./context.js";

/**
 * Prometheus metrics, served by the `metrics` operation at GET /metrics
 * (unauthenticated, like most exporters: keep the daemon on loopback or a
 * unix socket, or scrape through a proxy). Requests of both transports are
 * counted by operation and status. Sandbox and pool gauges are read from
 * the database at scrape time.
 */
export function setUpMetrics(ctx: ServerContext): void {
  const registry = new Registry();
  // Event-loop lag sampled once a second, not every 10 ms (prom-client's
  // default): that timer woke an idle daemon 100 times a second (~1% of a
  // core here), and any wakeup can land in the middle of a claim.
  collectDefaultMetrics({ register: registry, prefix: "corral_daemon_", eventLoopMonitoringPrecision: 1000 });

  const requests = new Counter({
    name: "corral_http_requests_total",
    help: "Requests by operation and status, over HTTP and /v1/connect.",
    labelNames: ["operation", "status"] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: "corral_http_request_duration_seconds",
    help: "Time until the answer was sent (streams, such as exec and downloads, until their end).",
    labelNames: ["operation"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
    registers: [registry],
  });
  new Gauge({
    name: "corral_sandboxes",
    help: "Sandboxes by tenant and state (pooled ones under tenant _pool).",
    labelNames: ["tenant", "state"] as const,
    registers: [registry],
    collect() {
      this.reset();
      const rows = ctx.sandboxes.db.prepare("SELECT tenant_id AS tenant, state, count(*) AS n FROM sandboxes GROUP BY tenant_id, state").all() as {
        tenant: string;
        state: string;
        n: number;
      }[];
      for (const r of rows) this.set({ tenant: r.tenant, state: r.state }, r.n);
    },
  });
  new Gauge({
    name: "corral_connect_channels",
    help: "/v1/connect WebSockets open now (the SDK keeps one per process and daemon).",
    registers: [registry],
    collect() {
      this.set(ctx.channels);
    },
  });
  const pools = ctx.sandboxes.pools;
  new Gauge({
    name: "corral_pool_ready",
    help: "Sandboxes ready in each warm pool.",
    labelNames: ["pool", "template"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const p of pools.list()) this.set({ pool: p.key, template: p.template }, p.ready);
    },
  });
  new Gauge({
    name: "corral_pool_claims",
    help: "Creates served from a warm pool (hit) or started cold for lack of one (miss), since the daemon started.",
    labelNames: ["pool", "result"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const p of pools.list()) {
        this.set({ pool: p.key, result: "hit" }, p.hits);
        this.set({ pool: p.key, result: "miss" }, p.misses);
      }
    },
  });

  ctx.observe = (operation, status, seconds) => {
    if (operation === "metrics") return;
    requests.inc({ operation, status: String(status) });
    duration.observe({ operation }, seconds);
  };
  ctx.metrics = async () => ({ type: registry.contentType, text: await registry.metrics() });
}
