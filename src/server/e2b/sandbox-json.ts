import { networkMode } from "../../core/network-spec.js";
import type { ResolvedSpec } from "../../core/sandbox-spec.js";
import type { SandboxInfo, SandboxRecord } from "../../runtime/sandboxes.js";
import type { AccessTokens } from "./access-token.js";
import { e2bNetworkOf } from "./network-rules.js";

/**
 * The envd version corrald reports, which steers the E2B SDK: the newest
 * whose features (gated by the SDK on this number) corral serves. 0.5.7
 * turns on raw (octet-stream, gzip) uploads; closeStdin (0.5.2), stdin
 * false (0.3.0), the default user (0.4.0) and metrics (0.1.5, disk 0.2.4)
 * are older. 0.6.2 would promise file metadata (xattrs, which the agent
 * does not write): the SDK itself refuses metadata below it.
 */
export const ENVD_VERSION = "0.5.7";

/** E2B's default template, and the corral template it is. */
export const E2B_BASE = "base";
export const CORRAL_BASE = "e2b-base";

/** E2B always has an end; a corral sandbox without a timeout (persistent) never ends: the last representable instant. */
export const NEVER = "9999-12-31T23:59:59.999Z";

const MiB = 1024 * 1024;

/** The corral template an E2B templateID names: "base" is e2b-base, any other is a corral template by name. */
export function corralTemplate(templateID: string): string {
  return templateID === E2B_BASE ? CORRAL_BASE : templateID;
}

export function e2bTemplateId(spec: ResolvedSpec): string {
  return spec.template === CORRAL_BASE ? E2B_BASE : spec.template;
}

/** What E2B's `domain` and `trafficAccessToken` come from: corrald's port URLs (server/port-proxy.ts). */
export interface PortHosts {
  /** `localhost:8080`: so the SDK's getHost(port) gives `PORT-ID.localhost:8080`, a port URL's host. */
  hostDomain(): string | undefined;
  /** The token a port URL takes (e2b-traffic-access-token, X-Corral-Token or ?corral_token=). */
  token(id: string): string;
}

/** E2B's `Sandbox`: what create and connect answer, with the token for the sandbox's daemon. */
export function sandboxJson(r: SandboxRecord, tokens: AccessTokens, ports?: PortHosts) {
  return {
    sandboxID: r.id,
    templateID: e2bTemplateId(r.spec),
    alias: r.spec.template,
    clientID: "corral",
    envdVersion: ENVD_VERSION,
    envdAccessToken: tokens.tokenOf(r.id),
    domain: ports?.hostDomain() ?? null,
    trafficAccessToken: ports ? ports.token(r.id) : null,
  };
}

/** E2B's state: a sandbox that is not running is as a paused one (a stopped persistent sandbox starts again from its disk). */
export function stateOf(s: SandboxInfo): "running" | "paused" {
  return s.status === "running" ? "running" : "paused";
}

/** E2B's `ListedSandbox`. */
export function listedJson(s: SandboxInfo) {
  return {
    sandboxID: s.id,
    templateID: e2bTemplateId(s.spec),
    alias: s.spec.template,
    clientID: "corral",
    cpuCount: Math.max(1, Math.ceil(s.spec.resources.vcpus)),
    memoryMB: Math.round(s.spec.resources.memory / MiB),
    diskSizeMB: Math.round(s.spec.resources.disk / MiB),
    startedAt: s.createdAt,
    endAt: s.expiresAt ?? NEVER,
    envdVersion: ENVD_VERSION,
    metadata: s.spec.labels,
    state: stateOf(s),
    volumeMounts: [],
  };
}

/** E2B's `SandboxDetail`: the listed fields, the token, and what corral's network is. */
export function detailJson(s: SandboxInfo, tokens: AccessTokens, ports?: PortHosts) {
  const network = e2bNetworkOf(s.spec.network);
  return {
    ...listedJson(s),
    envdAccessToken: tokens.tokenOf(s.id),
    domain: ports?.hostDomain() ?? null,
    // Internet access is corral's nat network, its egress lists E2B's.
    allowInternetAccess: networkMode(s.spec.network) === "nat",
    ...(network ? { network } : {}),
    lifecycle: { onTimeout: "kill", autoResume: false },
  };
}
