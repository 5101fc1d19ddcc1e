export { Sandbox, type SandboxOpts, type SandboxInfo, type ListOpts, type Resources, type ResolvedSpec, type SnapshotInfo } from "./sandbox.js";
export { Commands, CommandHandle, type CommandOpts, type RunOpts, type BackgroundOpts, type CommandResult, type ConnectOpts, type ProcessInfo } from "./commands.js";
export { Files, type FileStat, type EntryInfo, type WriteInfo, type WriteData, type WriteOpts, type ReadOpts, type FilesystemEvent, type WatchOpts, type WatchHandle } from "./files.js";
export { Pty, PtyHandle, type PtySize, type PtyCreateOpts } from "./pty.js";
export { Templates, type TemplateInfo, type BuildEvent, type BuildOpts } from "./templates.js";
export { Pools, type PoolInfo, type PoolSpec } from "./pools.js";
export { Store, type StoreUsage, type GcResult } from "./store.js";
export { Tenants, Keys, type TenantInfo, type ApiKeyInfo, type NewApiKey, type Quota } from "./admin.js";
export { Snapshots } from "./snapshots.js";
export { SshKeys, type SshKeyInfo } from "./ssh.js";
export { type ConnectionOpts, DEFAULT_API_URL, DEFAULT_REQUEST_TIMEOUT_MS } from "./config.js";
export { DEFAULT_TEMPLATE } from "./defaults.js";
export {
  CorralSdkError,
  NotFoundError,
  AuthError,
  ForbiddenError,
  QuotaError,
  InvalidArgumentError,
  TimeoutError,
  ConflictError,
  SandboxError,
  type SpecIssue,
  type QuotaOver,
} from "./errors.js";
export type { paths, components } from "./api-types.js";
