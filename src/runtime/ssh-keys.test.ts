import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { openDatabase } from "./db.js";
import { Tenants } from "./tenants.js";
import { MAX_SSH_KEYS_PER_TENANT, SshKeys, parsePublicKey } from "./ssh-keys.js";

/** A fresh key pair from ssh-keygen: its public line and the fingerprint ssh-keygen -l prints. */
function keygen(type: "ed25519" | "ecdsa" | "rsa", comment: string): { line: string; fingerprint: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "corral-ssh-keys-"));
  try {
    const f = path.join(dir, "k");
    const r = spawnSync("ssh-keygen", ["-q", "-t", type, ...(type === "rsa" ? ["-b", "2048"] : []), "-N", "", "-C", comment, "-f", f], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const fingerprint = spawnSync("ssh-keygen", ["-l", "-f", `${f}.pub`], { encoding: "utf8" }).stdout.split(" ")[1]!;
    return { line: fs.readFileSync(`${f}.pub`, "utf8"), fingerprint };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test("keys of ssh-keygen's types register with ssh-keygen's fingerprint, per tenant", () => {
  const db = openDatabase(":memory:");
  const tenants = new Tenants(db);
  tenants.create("a");
  tenants.create("b");
  const keys = new SshKeys(db, tenants);
  for (const type of ["ed25519", "ecdsa", "rsa"] as const) {
    const k = keygen(type, `${type} user@host`);
    const added = keys.add("a", k.line);
    assert.equal(added.fingerprint, k.fingerprint);
    assert.equal(added.comment, `${type} user@host`);
    assert.equal(added.publicKey, k.line.trim());
    assert.equal(keys.allows("a", parsePublicKey(k.line).blob), true);
    assert.equal(keys.allows("b", parsePublicKey(k.line).blob), false, "another tenant's key does not log in");
    assert.throws(() => keys.add("a", k.line), { code: "conflict" });
  }
  assert.equal(keys.list("a").length, 3);
  assert.equal(keys.list().length, 3);
  const first = keys.list("a")[0]!;
  assert.throws(() => keys.remove("b", first.id), { code: "ssh_key_not_found" });
  keys.remove("a", first.id);
  assert.equal(keys.allows("a", parsePublicKey(first.publicKey).blob), false);
  assert.throws(() => keys.add("nobody", keygen("ed25519", "x").line), { code: "tenant_not_found" });
});

test("refuses what is not a public key line, with the reason", () => {
  const ed = keygen("ed25519", "c").line.trim();
  const [type, b64] = ed.split(" ") as [string, string];
  for (const bad of ["", "ssh-ed25519", "ssh-dss AAAAB3NzaC1kc3M=", `from="x" ${ed}`, `ssh-ed25519 ${b64.slice(0, -8)}`, `ecdsa-sha2-nistp256 ${b64}`, "-----BEGIN OPENSSH PRIVATE KEY-----"]) {
    assert.throws(() => parsePublicKey(bad), { code: "invalid_argument" }, JSON.stringify(bad));
  }
  assert.equal(parsePublicKey(`${type} ${b64}`).comment, "");
});

test(`keeps at most ${MAX_SSH_KEYS_PER_TENANT} keys per tenant`, () => {
  const db = openDatabase(":memory:");
  const tenants = new Tenants(db);
  tenants.create("a");
  const keys = new SshKeys(db, tenants);
  // Distinct ed25519 blobs without ssh-keygen: any 32 bytes are a key's wire form to the table.
  const line = (i: number) => {
    const t = Buffer.from("ssh-ed25519");
    const k = Buffer.alloc(32, 0);
    k.writeUInt32BE(i);
    const blob = Buffer.concat([Buffer.from([0, 0, 0, t.length]), t, Buffer.from([0, 0, 0, 32]), k]);
    return `ssh-ed25519 ${blob.toString("base64")} n${i}`;
  };
  for (let i = 0; i < MAX_SSH_KEYS_PER_TENANT; i++) keys.add("a", line(i));
  assert.throws(() => keys.add("a", line(MAX_SSH_KEYS_PER_TENANT)), /the most kept/);
});
