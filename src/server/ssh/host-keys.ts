import fs from "node:fs";
import path from "node:path";
import ssh2 from "ssh2";

/** A sandbox's SSH host key: the private key (OpenSSH format) and its public line. */
export interface HostKey {
  readonly privateKey: string;
  /** "ssh-ed25519 AAAA...", as a known_hosts line has it after the host. */
  readonly publicKey: string;
}

/**
 * The SSH host key of sandbox `id`: generated (ed25519) the first time it
 * is asked for, then kept in the sandbox's directory on the host
 * (`<state>/sandboxes/<id>/ssh_host_ed25519_key`, 0600, never inside what
 * the sandbox can see: its bind-mounted `run/` is a subdirectory). The
 * directory lives as long as the sandbox: the key is the same across stop
 * and start, daemon restarts and promote; a sandbox restored from a
 * snapshot has a new id, so a new directory and a key of its own. Written
 * with O_EXCL, so two daemons racing on a first login agree on one key.
 */
export function hostKey(stateDir: string, id: string): HostKey {
  const file = path.join(stateDir, "sandboxes", id, "ssh_host_ed25519_key");
  let privateKey: string;
  try {
    privateKey = fs.readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    const pair = ssh2.utils.generateKeyPairSync("ed25519", { comment: `corral-${id}` });
    try {
      fs.writeFileSync(file, pair.private, { mode: 0o600, flag: "wx" });
      privateKey = pair.private;
    } catch (w) {
      if ((w as NodeJS.ErrnoException).code !== "EEXIST") throw w;
      privateKey = fs.readFileSync(file, "utf8");
    }
  }
  const parsed = ssh2.utils.parseKey(privateKey);
  if (parsed instanceof Error) throw parsed;
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  return { privateKey, publicKey: `${key.type} ${key.getPublicSSH().toString("base64")}` };
}

/** The name known_hosts files know a sandbox by (ssh's HostKeyAlias): its id, so a new sandbox of the same name is a new host. */
export const hostKeyAlias = (id: string) => `corral-${id}`;
