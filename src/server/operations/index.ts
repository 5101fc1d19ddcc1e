import type { OpenApi } from "../openapi.js";
import { archiveOperations } from "./archives.js";
import { fileOperations } from "./files.js";
import { fileWatchOperations } from "./file-watch.js";
import { poolOperations } from "./pools.js";
import { processOperations } from "./processes.js";
import { processStreamOperations } from "./process-streams.js";
import { sandboxOperations } from "./sandboxes.js";
import { snapshotOperations } from "./snapshots.js";
import { sshOperations } from "./ssh.js";
import { storeOperations } from "./store.js";
import { systemOperations } from "./system.js";
import { templateOperations } from "./templates.js";
import { tenantOperations } from "./tenants.js";
import type { Handler, Operations } from "./types.js";

const RESOURCES: readonly Operations[] = [
  systemOperations,
  sandboxOperations,
  processOperations,
  processStreamOperations,
  fileOperations,
  fileWatchOperations,
  archiveOperations,
  sshOperations,
  snapshotOperations,
  templateOperations,
  poolOperations,
  storeOperations,
  tenantOperations,
];

/**
 * The one table: every operationId of api/openapi.yaml and its handler,
 * whichever transport brings the request (as Firecracker turns every API
 * request into one action in rpc_interface.rs). HTTP routes are made from
 * it and the spec; /v1/connect dispatches through it.
 */
export function operationTable(resources: readonly Operations[] = RESOURCES): ReadonlyMap<string, Handler> {
  const table = new Map<string, Handler>();
  for (const r of resources) {
    for (const [id, h] of Object.entries(r)) {
      if (table.has(id)) throw new Error(`operation ${id} has two handlers`);
      table.set(id, h);
    }
  }
  return table;
}

/**
 * Why this table and the spec do not match, if they do not: an operation
 * of the spec without a handler, or a handler of no operation. The daemon
 * refuses to start on any.
 */
export function tableProblems(openapi: OpenApi, table: ReadonlyMap<string, Handler>): string[] {
  const ops = new Set(openapi.operationIds());
  const missing = [...ops].filter((id) => !table.has(id));
  const extra = [...table.keys()].filter((id) => !ops.has(id));
  return [
    ...(missing.length ? [`operations of api/openapi.yaml without a handler: ${missing.join(", ")}`] : []),
    ...(extra.length ? [`handlers of no operation in api/openapi.yaml: ${extra.join(", ")}`] : []),
  ];
}

/** The table, checked against the spec; throws (naming them) when they disagree. */
export function checkedOperationTable(openapi: OpenApi, resources?: readonly Operations[]): ReadonlyMap<string, Handler> {
  const table = operationTable(resources);
  const problems = tableProblems(openapi, table);
  if (problems.length) throw new Error(`corrald cannot start: ${problems.join("; ")}`);
  return table;
}
