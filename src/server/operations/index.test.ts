// The operation table against api/openapi.yaml, both ways: the daemon
// does not start with an operation lacking a handler, nor with a handler
// of no operation, and says which.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import type { Sandboxes } from "../../runtime/sandboxes.js";
import { buildApp } from "../app.js";
import { OpenApi, OPENAPI_PATH } from "../openapi.js";
import { operationTable, tableProblems } from "./index.js";
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
import { ok } from "./types.js";

const ALL = [
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
// Nothing reaches the runtime while the app is only built.
const app = (o: { operations?: typeof ALL; openapiFile?: string }) => buildApp({ sandboxes: {} as Sandboxes, logger: pino({ level: "silent" }), ...o });

test("every operation of the spec has exactly one handler, and every handler an operation", () => {
  assert.deepEqual(tableProblems(new OpenApi(), operationTable()), []);
  assert.equal(operationTable().size, new OpenApi().operationIds().length);
});

test("the daemon refuses to start with an operation that has no handler, naming it", async () => {
  assert.throws(() => app({ operations: ALL.filter((r) => r !== storeOperations) }), /corrald cannot start: operations of api\/openapi\.yaml without a handler: storeUsage, gcStore$/);
  // The same from the other side: the spec grows an operation nobody wrote.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "corral-spec-"));
  try {
    const file = path.join(dir, "openapi.yaml");
    const extra = "  /v1/frobnicate:\n    post:\n      operationId: frobnicate\n      responses:\n        \"204\": { description: Done. }\n";
    fs.writeFileSync(file, fs.readFileSync(OPENAPI_PATH, "utf8").replace("\npaths:\n", `\npaths:\n${extra}`));
    assert.throws(() => app({ openapiFile: file }), /without a handler: frobnicate$/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("the daemon refuses to start with a handler of no operation, naming it", () => {
  assert.throws(() => app({ operations: [...ALL, { frobnicate: async () => ok({}) }] }), /corrald cannot start: handlers of no operation in api\/openapi\.yaml: frobnicate$/);
  assert.throws(() => app({ operations: [...ALL, { health: async () => ok({}) }] }), /operation health has two handlers/);
});

test("the daemon starts with the table as it is", async () => {
  const { app: a } = app({});
  await a.close();
});
