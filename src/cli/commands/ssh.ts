import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { InvalidArgumentError } from "../../core/errors.js";
import { servedRefusal, type Connection, type Context } from "../context.js";
import { print } from "../stdio.js";
import { sideOf, type Action } from "./action.js";

/** Where ssh-config keeps the sandboxes' host keys: ssh's UserKnownHostsFile for them. */
export function knownHostsFile(env: NodeJS.ProcessEnv = process.env): string {
  const base = env["XDG_CONFIG_HOME"] || path.join(env["HOME"] || os.homedir(), ".config");
  return path.join(base, "corral", "known_hosts");
}

/** SSH goes through the daemon (its SSH server speaks for the sandboxes): none configured is one line. */
async function daemon(ctx: Context, what: string): Promise<Connection> {
  const conn = await ctx.connection();
  if (!conn) throw new InvalidArgumentError(`${what} goes through a corral daemon: set CORRAL_API_URL (and CORRAL_API_KEY) or pass --api-url`);
  return conn;
}

const sdk = () => import("../../../sdk/src/index.js");

/** `corral ssh-proxy SANDBOX`: ssh's ProxyCommand, the SSH connection's bytes between stdin/stdout and the daemon. */
export const sshProxy: Action = async (ctx, p) => {
  const conn = await daemon(ctx, "ssh-proxy");
  const { SshKeys } = await sdk();
  const server = await SshKeys.tunnel(p.args["sandbox"] as string, process.stdin, conn);
  await new Promise<void>((resolve, reject) => {
    server.on("error", reject);
    server.on("end", resolve);
    server.pipe(process.stdout);
  });
  process.stdin.destroy();
};

/**
 * `corral ssh-config [SANDBOX...]`: a Host block per running sandbox (all
 * of the tenant's unless named) for ssh's config: ProxyCommand through
 * the daemon, the sandbox's host key under its alias in corral's own
 * known_hosts file (written here: a key already there for an alias is
 * kept, so a changed key fails ssh's check), strict checking on.
 */
export const sshConfig: Action = async (ctx, p) => {
  const conn = await daemon(ctx, "ssh-config");
  await print(await configFor(conn, (p.args["sandbox"] as string[] | undefined) ?? []));
};

async function configFor(conn: Connection, names: readonly string[]): Promise<string> {
  const { Sandbox, SshKeys } = await sdk();
  const all = (await Sandbox.list(conn)).filter((s) => s.status === "running");
  const chosen = names.length ? names.map((n) => all.find((s) => s.name === n || s.sandboxId === n) ?? Promise.reject(new InvalidArgumentError(`no running sandbox ${n}`))) : all;
  const sandboxes = await Promise.all(chosen);
  const file = knownHostsFile();
  const known = fs.existsSync(file) ? fs.readFileSync(file, "utf8").split("\n").filter(Boolean) : [];
  const blocks: string[] = [];
  for (const s of sandboxes) {
    const k = await SshKeys.hostKey(s.sandboxId, conn);
    const had = known.find((l) => l.split(" ")[0] === k.alias);
    if (!had) known.push(k.knownHosts);
    else if (had !== k.knownHosts) process.stderr.write(`corral: the host key of ${s.name} differs from the one in ${file}: ssh will refuse it\n`);
    // On a served state dir the proxy finds the daemon (and its credential) there, as this command did.
    const via = conn.served ? `${[process.execPath, process.argv[1]!, "--state-dir", conn.served.stateDir].map(shellWord).join(" ")}` : `env CORRAL_API_URL=${shellWord(conn.apiUrl)} ${[process.execPath, process.argv[1]!].map(shellWord).join(" ")}`;
    const proxy = `${via} ${["ssh-proxy", s.sandboxId].map(shellWord).join(" ")}`;
    blocks.push(
      [
        `Host ${s.name}`,
        `  User root`,
        `  ProxyCommand ${proxy}`,
        `  HostKeyAlias ${k.alias}`,
        `  UserKnownHostsFile ${file}`,
        `  StrictHostKeyChecking yes`,
        `  # known_hosts: ${k.knownHosts}`,
      ].join("\n"),
    );
  }
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.writeFileSync(`${file}.tmp`, known.map((l) => `${l}\n`).join(""), { mode: 0o600 });
  fs.renameSync(`${file}.tmp`, file);
  return blocks.map((b) => `${b}\n`).join("\n");
}

/** `corral ssh SANDBOX [-- CMD...]`: the system's ssh with ssh-config's block for the sandbox; its exit status. */
export const ssh: Action = async (ctx, p) => {
  const conn = await daemon(ctx, "ssh");
  const name = p.args["sandbox"] as string;
  const command = (p.args["command"] as string[] | undefined) ?? [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "corral-ssh-"));
  try {
    const cfg = path.join(dir, "config");
    fs.writeFileSync(cfg, await configFor(conn, [name]));
    const { Sandbox } = await sdk();
    const host = (await Sandbox.getInfo(name, conn)).name;
    const identity = p.opts["identity"] as string | undefined;
    const idArgs = identity ? ["-i", identity, "-o", "IdentitiesOnly=yes"] : [];
    const child = spawn("ssh", ["-F", cfg, ...idArgs, host, ...(command.length ? ["--", ...command] : [])], { stdio: "inherit" });
    return await new Promise<number>((resolve, reject) => {
      child.on("error", (e) => reject((e as NodeJS.ErrnoException).code === "ENOENT" ? new InvalidArgumentError("ssh is not installed (openssh-client)") : e));
      child.on("exit", (code, signal) => resolve(code ?? 128 + (signal ? os.constants.signals[signal] : 0)));
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
};

/** What the key commands print of a key, whichever side answered. */
interface KeyRow {
  id: string;
  tenant: string;
  type: string;
  fingerprint: string;
  comment: string;
}

/** The key from a file (or stdin for "-"). */
function readKey(file: string): string {
  return fs.readFileSync(file === "-" ? 0 : file, "utf8").trim();
}

/** `corral admin ssh-key add FILE`: a tenant's public key (the state dir: --tenant; a daemon: the key's tenant). */
export const sshKeyAdd: Action = async (ctx, p) => {
  const line = readKey(p.args["file"] as string);
  const tenant = p.opts["tenant"] as string | undefined;
  const k = await sideOf<Promise<KeyRow>>(
    ctx,
    async () => async (s) => s.sshKeys.add(tenant ?? "local", line),
    async () => (c) => {
      if (tenant && c.served) throw servedRefusal(c.served, "admin ssh-key add --tenant");
      if (tenant) throw new InvalidArgumentError("--tenant is for the state dir: through a daemon a key is added for the API key's tenant");
      return sdk().then(({ SshKeys }) => SshKeys.add(line, c));
    },
  );
  await print(`${k.id} ${k.fingerprint} ${k.comment}\n`);
};

export const sshKeyLs: Action = async (ctx, p) => {
  const tenant = p.opts["tenant"] as string | undefined;
  const keys = await sideOf<Promise<KeyRow[]>>(
    ctx,
    async () => async (s) => s.sshKeys.list(tenant),
    // On a served state dir the daemon lists every tenant's, as the state dir does.
    async () => (c) => sdk().then(async ({ SshKeys }) => (await SshKeys.list(c)).filter((k) => !(tenant && c.served) || k.tenant === tenant)),
  );
  await print(keys.map((k) => `${k.id} ${k.tenant} ${k.type} ${k.fingerprint} ${k.comment}\n`).join(""));
};

export const sshKeyRm: Action = async (ctx, p) => {
  const id = p.args["id"] as string;
  const tenant = p.opts["tenant"] as string | undefined;
  await sideOf<Promise<void>>(
    ctx,
    async () => async (s) => s.sshKeys.remove(tenant ?? "local", id),
    async () => (c) => (tenant && c.served ? Promise.reject(servedRefusal(c.served, "admin ssh-key rm --tenant")) : sdk().then(({ SshKeys }) => SshKeys.remove(id, c))),
  );
};

function shellWord(s: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
