import { createHash, randomBytes } from "node:crypto";
import { InvalidArgumentError, NotFoundError } from "../core/errors.js";
import { stmt, uniqueOrConflict, type Db } from "./db.js";
import type { Tenants } from "./tenants.js";

/** A public key a tenant's users log in to its sandboxes over SSH with. */
export interface SshKey {
  readonly id: string;
  readonly tenant: string;
  /** ssh-ed25519, ecdsa-sha2-nistp256 ... */
  readonly type: string;
  /** The key as an authorized_keys line: type, base64, comment. */
  readonly publicKey: string;
  /** SHA256:... as ssh-keygen -l prints it. */
  readonly fingerprint: string;
  readonly comment: string;
  readonly createdAt: string;
}

interface Row {
  id: string;
  tenant_id: string;
  type: string;
  blob: Buffer;
  comment: string;
  fingerprint: string;
  created_at: string;
}

/** Key types OpenSSH offers by default (RSA only with SHA-2 signatures: the server checks that). */
const TYPES = new Set(["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"]);
/** Keys kept per tenant: the table a login reads stays small. */
export const MAX_SSH_KEYS_PER_TENANT = 100;

/** SHA256 fingerprint of a key's wire blob, as OpenSSH prints it. */
export function fingerprintOf(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/**
 * Parses an authorized_keys line ("ssh-ed25519 AAAA... comment"; options
 * before the type are refused). The blob's own type must be the line's.
 */
export function parsePublicKey(line: string): { type: string; blob: Buffer; comment: string } {
  const words = line.trim().split(/\s+/);
  const [type, b64] = words;
  if (!type || !b64 || !TYPES.has(type)) {
    throw new InvalidArgumentError(`not an SSH public key line ("${TYPES.has(type ?? "") ? type : "ssh-ed25519"} AAAA... comment"): starts with ${JSON.stringify(line.trim().slice(0, 40))}`);
  }
  const blob = Buffer.from(b64, "base64");
  const len = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
  if (len < 0 || 4 + len > blob.length || blob.subarray(4, 4 + len).toString() !== type || blob.toString("base64").replace(/=+$/, "") !== b64.replace(/=+$/, "") || !wholeStrings(blob)) {
    throw new InvalidArgumentError(`the ${type} key's base64 is not a ${type} key`);
  }
  return { type, blob, comment: words.slice(2).join(" ").slice(0, 256) };
}

/** Whether a key blob is SSH strings (uint32 length, bytes) end to end: a cut or padded copy is not. */
function wholeStrings(blob: Buffer): boolean {
  let at = 0;
  while (at < blob.length) {
    if (at + 4 > blob.length) return false;
    at += 4 + blob.readUInt32BE(at);
  }
  return at === blob.length;
}

/** Tenants' SSH public keys (the ssh_keys table). */
export class SshKeys {
  constructor(
    private readonly db: Db,
    private readonly tenants: Tenants,
  ) {}

  /** Registers a key for a tenant (which must exist); a key already there is a ConflictError. */
  add(tenant: string, line: string): SshKey {
    this.tenants.get(tenant);
    const k = parsePublicKey(line);
    const n = (stmt(this.db, "SELECT count(*) AS n FROM ssh_keys WHERE tenant_id = ?").get(tenant) as { n: number }).n;
    if (n >= MAX_SSH_KEYS_PER_TENANT) throw new InvalidArgumentError(`tenant "${tenant}" has ${n} SSH keys, the most kept: remove one first`);
    const id = randomBytes(6).toString("hex");
    const fingerprint = fingerprintOf(k.blob);
    uniqueOrConflict(`tenant "${tenant}" already has the key ${fingerprint}`, () =>
      stmt(this.db, "INSERT INTO ssh_keys (id, tenant_id, type, blob, comment, fingerprint, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)").run(
        id,
        tenant,
        k.type,
        k.blob,
        k.comment,
        fingerprint,
        new Date().toISOString(),
      ),
    );
    return this.get(tenant, id);
  }

  list(tenant?: string): SshKey[] {
    const rows = (tenant === undefined ? stmt(this.db, "SELECT * FROM ssh_keys ORDER BY tenant_id, created_at").all() : stmt(this.db, "SELECT * FROM ssh_keys WHERE tenant_id = ? ORDER BY created_at").all(tenant)) as Row[];
    return rows.map(toKey);
  }

  get(tenant: string, id: string): SshKey {
    const row = stmt(this.db, "SELECT * FROM ssh_keys WHERE tenant_id = ? AND id = ?").get(tenant, id) as Row | undefined;
    if (!row) throw new NotFoundError("ssh_key", id);
    return toKey(row);
  }

  remove(tenant: string, id: string): void {
    if (stmt(this.db, "DELETE FROM ssh_keys WHERE tenant_id = ? AND id = ?").run(tenant, id).changes === 0) throw new NotFoundError("ssh_key", id);
  }

  /** Whether `blob` (a key's wire form) is one of the tenant's. */
  allows(tenant: string, blob: Buffer): boolean {
    return stmt(this.db, "SELECT 1 FROM ssh_keys WHERE tenant_id = ? AND fingerprint = ?").get(tenant, fingerprintOf(blob)) !== undefined;
  }
}

function toKey(r: Row): SshKey {
  return {
    id: r.id,
    tenant: r.tenant_id,
    type: r.type,
    publicKey: `${r.type} ${Buffer.from(r.blob).toString("base64")}${r.comment ? ` ${r.comment}` : ""}`,
    fingerprint: r.fingerprint,
    comment: r.comment,
    createdAt: r.created_at,
  };
}
