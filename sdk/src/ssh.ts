import type { Readable } from "node:stream";
import type { components } from "./api-types.js";
import { resolveConfig, type ConnectionOpts } from "./config.js";
import { Http } from "./http.js";

export type SshKeyInfo = components["schemas"]["SshKey"];

/** The SSH public keys of the caller's tenant: what logs in to its sandboxes (`ssh`, `scp`, `sftp`). */
export class SshKeys {
  static async list(opts: ConnectionOpts = {}): Promise<SshKeyInfo[]> {
    return (await new Http(resolveConfig(opts)).json("get", "/v1/ssh-keys", {})).keys;
  }

  /** Registers a public key (an authorized_keys line: "ssh-ed25519 AAAA... comment"). */
  static async add(publicKey: string, opts: ConnectionOpts = {}): Promise<SshKeyInfo> {
    return new Http(resolveConfig(opts)).json("post", "/v1/ssh-keys", { json: { publicKey } });
  }

  static async remove(id: string, opts: ConnectionOpts = {}): Promise<void> {
    await new Http(resolveConfig(opts)).json("delete", "/v1/ssh-keys/{keyId}", { path: { keyId: id } });
  }

  /** A sandbox's SSH host key, and its known_hosts line under `alias` (ssh's HostKeyAlias). */
  static async hostKey(sandbox: string, opts: ConnectionOpts = {}): Promise<{ alias: string; publicKey: string; knownHosts: string }> {
    return new Http(resolveConfig(opts)).json("get", "/v1/sandboxes/{id}/ssh/host-key", { path: { id: sandbox } });
  }

  /**
   * An SSH connection's bytes to a sandbox (what ssh's ProxyCommand
   * carries): `input` is the client's side, the Readable the server's.
   * One full-duplex HTTP request, for as long as the connection lasts.
   */
  static async tunnel(sandbox: string, input: AsyncIterable<Uint8Array>, opts: ConnectionOpts = {}): Promise<Readable> {
    const res = await new Http(resolveConfig({ ...opts, transport: "http" })).stream("post", "/v1/sandboxes/{id}/ssh", { path: { id: sandbox }, body: input, timeoutMs: 0 });
    return res.stream();
  }
}
