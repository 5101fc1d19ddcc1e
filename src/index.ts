// The library: everything corral's CLI and daemon are made of.
export * from "./core/index.js";
export { Sandboxes, LOCAL_TENANT, DEFAULT_STATE_DIR, type SandboxesOptions, type SandboxInfo, type SandboxRecord, type SnapshotInfo, type ExecOutcome, type Scope } from "./runtime/sandboxes.js";
export type { BackendKind, SandboxIdentity } from "./backends/backend.js";
export { Tenants, type Tenant, type ApiKeyInfo } from "./runtime/tenants.js";
export { AgentClient, type ExecRequest, type ExecResult, type ExecCallbacks, type FileStat, type DirEntry } from "./agent/client.js";
export { startDaemon, type Daemon, type DaemonOptions } from "./server/daemon.js";
