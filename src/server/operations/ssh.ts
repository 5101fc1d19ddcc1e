import { Duplex, PassThrough } from "node:stream";
import { hostKey, hostKeyAlias } from "../ssh/host-keys.js";
import { serveSsh } from "../ssh/gateway.js";
import { created, noContent, ok, param, scopeOf, type Operations } from "./types.js";

/**
 * SSH into sandboxes (ssh/gateway.ts): a tenant registers its public
 * keys, asks for a sandbox's host key (for known_hosts), and `corral
 * ssh-proxy` (ssh's ProxyCommand) opens sshSession, whose request bytes
 * are the client's side of the SSH connection and whose answer bytes
 * the server's: over /v1/connect binary frames with the channel's flow
 * control, or one full-duplex HTTP request.
 */
export const sshOperations: Operations = {
  async sshSession(ctx, req) {
    const rec = ctx.sandboxes.record(param(req, "id"), scopeOf(req));
    req.sandbox = rec.id;
    const upload = req.upload!; // required by the spec
    const toClient = new PassThrough();
    const socket = Duplex.from({ readable: upload.stream, writable: toClient });
    socket.on("error", () => {});
    toClient.once("close", () => socket.destroy());
    serveSsh(ctx, rec.tenant, rec.id, socket, req.log);
    return { status: 200, bytes: toClient, type: "application/octet-stream" };
  },

  async sshHostKey(ctx, req) {
    const rec = ctx.sandboxes.record(param(req, "id"), scopeOf(req));
    req.sandbox = rec.id;
    const key = hostKey(ctx.sandboxes.stateDir, rec.id);
    const alias = hostKeyAlias(rec.id);
    return ok({ alias, publicKey: key.publicKey, knownHosts: `${alias} ${key.publicKey}` });
  },

  async listSshKeys(ctx, req) {
    return ok({ keys: ctx.sandboxes.sshKeys.list(scopeOf(req).tenant) });
  },

  async addSshKey(ctx, req) {
    return created(ctx.sandboxes.sshKeys.add(req.tenant, (req.body as { publicKey: string }).publicKey));
  },

  async deleteSshKey(ctx, req) {
    ctx.sandboxes.sshKeys.remove(req.tenant, param(req, "keyId"));
    return noContent;
  },
};
