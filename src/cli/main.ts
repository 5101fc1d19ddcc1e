#!/usr/bin/env node
import { Command } from "commander";
import { formatSize, InvalidArgumentError, parseSize } from "../core/index.js";
import { Sandboxes } from "../runtime/sandboxes.js";
import { BUILTIN_TEMPLATES } from "../store/store.js";
import { withProgress } from "./progress.js";
import { age, keyValues, table, until } from "./format.js";
import { collect, resourcesFrom, specFrom, specOptions, type ResourceFlags, type SpecFlags } from "./spec-flags.js";
import type { CliTarget, ExecInput } from "./target.js";
import { LocalTarget } from "./backend-local.js";
import { RemoteTarget } from "./backend-remote.js";
import { copy } from "./copy.js";
import { exitCodeOf, messageOf } from "./exit.js";

const program = new Command("corral")
  .description("sandboxes for untrusted code: containers and microVMs from one spec")
  .option("--state-dir <dir>", "state directory (default $CORRAL_STATE_DIR or /var/lib/corral)")
  .option("--api-url <url>", "run, create, exec, cp, ls, inspect and rm through this corral daemon (default $CORRAL_API_URL unless --state-dir is given)")
  .option("--api-key <key>", "API key for the daemon (default $CORRAL_API_KEY)")
  .addHelpText("after", "\nWithout a daemon URL every command acts on the state dir directly; daemon, admin and template always do.")
  .showHelpAfterError()
  .configureOutput({ outputError: (s, write) => write(s) });

interface GlobalFlags {
  stateDir?: string;
  apiUrl?: string;
  apiKey?: string;
}

function open(): Promise<Sandboxes> {
  const dir = program.opts<GlobalFlags>().stateDir;
  return Sandboxes.open(dir ? { stateDir: dir } : {});
}

let chosen: CliTarget | undefined;

/** The daemon when a URL is configured (--api-url, else $CORRAL_API_URL without --state-dir), else the state dir. */
function target(): CliTarget {
  if (chosen) return chosen;
  const f = program.opts<GlobalFlags>();
  if (f.apiUrl && f.stateDir) throw new InvalidArgumentError("give --api-url or --state-dir, not both");
  const apiUrl = f.apiUrl ?? (f.stateDir ? undefined : process.env["CORRAL_API_URL"]);
  if (!apiUrl) return (chosen = new LocalTarget(open));
  const apiKey = f.apiKey ?? process.env["CORRAL_API_KEY"];
  if (!apiKey) throw new InvalidArgumentError(`no API key for the daemon at ${apiUrl}: set CORRAL_API_KEY or pass --api-key`);
  return (chosen = new RemoteTarget({ apiUrl, apiKey }));
}

/** Runs argv in a sandbox with the terminal's streams; returns the exit code (128+signal when a signal ended it). */
async function execCommand(ref: string, req: ExecInput): Promise<number> {
  if (req.argv.length === 0) throw new InvalidArgumentError("no command given (put it after --)");
  const r = await target().exec(ref, req);
  if (r.timedOut) process.stderr.write(`corral: the command timed out after ${req.timeoutSeconds}s and was killed\n`);
  if (r.oom) process.stderr.write(`corral: the command was killed by the OOM killer (memory limit ${formatSize(r.oom.memoryLimit)})\n`);
  return r.exitCode ?? 128 + (r.signal ?? 0);
}

const STDIN_HELP = "pass stdin to the command (through a daemon, stdin is read to its end before the command starts)";

specOptions(program.command("run"))
  .description("start a throwaway sandbox, run a command in it, remove it")
  .argument("<command...>", "command and arguments (after --)")
  .option("-i, --interactive", STDIN_HELP)
  .action(async (argv: string[], f: SpecFlags & { interactive?: boolean }) => {
    const sb = await target().create(specFrom(f));
    let code = 125;
    try {
      code = await execCommand(sb.id, { argv, env: {}, stdin: f.interactive ?? false });
    } finally {
      await target().remove(sb.id, false);
    }
    process.exitCode = code;
  });

specOptions(program.command("create"))
  .description("start a sandbox and print its name")
  .action(async (f: SpecFlags) => {
    const sb = await target().create(specFrom(f));
    process.stdout.write(`${sb.name}\n`);
  });

program
  .command("exec")
  .description("run a command in a sandbox; exits with the command's status")
  .argument("<sandbox>", "name or id")
  .argument("<command...>", "command and arguments (after --)")
  .option("-e, --env <KEY=VALUE>", "environment variable (repeatable)", collect, [])
  .option("-w, --workdir <dir>", "working directory")
  .option("-i, --interactive", STDIN_HELP)
  .option("--timeout <seconds>", "kill the command after this many seconds")
  .action(async (ref: string, argv: string[], f: { env: string[]; workdir?: string; interactive?: boolean; timeout?: string }) => {
    const req: ExecInput = { argv, env: keyValues(f.env, "--env"), stdin: f.interactive ?? false };
    if (f.workdir) req.workdir = f.workdir;
    if (f.timeout) req.timeoutSeconds = Number(f.timeout);
    process.exitCode = await execCommand(ref, req);
  });

program
  .command("cp")
  .description("copy a file between the host and a sandbox: cp SRC SANDBOX:PATH or cp SANDBOX:PATH DST")
  .argument("<src>")
  .argument("<dst>")
  .action((src: string, dst: string) => copy(target(), src, dst));

program
  .command("ls")
  .alias("ps")
  .description("list sandboxes")
  .option("--json", "print JSON")
  .action(async (f: { json?: boolean }) => {
    const all = await target().list();
    if (f.json) {
      process.stdout.write(`${JSON.stringify(all, null, 2)}\n`);
      return;
    }
    process.stdout.write(
      `${table(
        ["NAME", "ID", "TEMPLATE", "BACKEND", "STATE", "AGE", "MEMORY", "LIFETIME"],
        all.map((x) => [
          x.name,
          x.id,
          x.spec.template,
          x.spec.backend,
          x.status,
          age(x.createdAt),
          formatSize(x.spec.resources.memory),
          x.expiresAt ? `expires in ${until(x.expiresAt)}` : x.spec.lifetime.mode,
        ]),
      )}\n`,
    );
  });

program
  .command("logs")
  .description("print a VM's serial console or a container's runtime log (the last 64 KiB)")
  .argument("<sandbox>")
  .action(async (ref: string) => {
    process.stdout.write(await target().logs(ref));
  });

program
  .command("inspect")
  .description("print a sandbox's record and usage (null when not running) as JSON")
  .argument("<sandbox>")
  .action(async (ref: string) => {
    process.stdout.write(`${JSON.stringify(await target().inspect(ref), null, 2)}\n`);
  });

program
  .command("rm")
  .description("stop and remove sandboxes")
  .argument("<sandbox...>")
  .option("-f, --force", "ignore sandboxes that do not exist")
  .action(async (refs: string[], f: { force?: boolean }) => {
    for (const ref of refs) await target().remove(ref, f.force ?? false);
  });

program
  .command("stop")
  .description("stop persistent sandboxes: their processes end, their disk stays")
  .argument("<sandbox...>")
  .action(async (refs: string[]) => {
    for (const ref of refs) await target().setRunning(ref, false);
  });

program
  .command("start")
  .description("start stopped sandboxes again, with the disk they had")
  .argument("<sandbox...>")
  .action(async (refs: string[]) => {
    for (const ref of refs) await target().setRunning(ref, true);
  });

const store = program.command("store").description("the shared layer store");
store
  .command("du")
  .description("disk used by shared layers (once each) and by each sandbox privately")
  .action(async () => {
    const s = await open();
    const du = await s.diskUsage();
    const rows = du.layers.map((l) => [l.digest.slice(0, 12), formatSize(l.bytes), l.templates.join(",") || "-", String(l.sandboxes)]);
    process.stdout.write(`${table(["LAYER", "SIZE", "TEMPLATES", "SANDBOXES"], rows)}\n\n`);
    const own = du.sandboxes.map((x) => [x.name, x.id, formatSize(x.bytes)]);
    process.stdout.write(`${table(["SANDBOX", "ID", "PRIVATE"], own)}\n\n`);
    process.stdout.write(`shared ${formatSize(du.sharedBytes)}, private ${formatSize(du.privateBytes)}\n`);
  });
store
  .command("gc")
  .description("remove layers and VM images no template names and no sandbox uses")
  .action(async () => {
    const s = await open();
    const r = await s.gc();
    process.stdout.write(`removed ${r.removed.length} layer(s) and ${r.images.length} VM image(s), freed ${formatSize(r.freedBytes)}\n`);
  });

const tpl = program.command("template").description("manage templates");
tpl
  .command("commit")
  .description("make a template of a persistent sandbox: its template plus what it has written")
  .argument("<sandbox>")
  .argument("<name>", "the new template's name")
  .action(async (ref: string, name: string) => {
    const s = await open();
    const t = await s.commit(ref, name);
    process.stdout.write(`${t.name} ${t.layers.join(",")}\n`);
  });
tpl
  .command("rm")
  .description("forget a template (its layers go at the next store gc, once no sandbox uses them)")
  .argument("<name>")
  .action(async (name: string) => {
    const s = await open();
    await s.store.removeTemplate(name);
  });
tpl
  .command("ls")
  .description("list templates in the store and the built-in ones")
  .action(async () => {
    const s = await open();
    const stored = new Map((await s.store.templates()).map((t) => [t.name, t]));
    const names = [...new Set([...stored.keys(), ...BUILTIN_TEMPLATES.keys()])].sort();
    const rows: string[][] = [];
    for (const n of names) {
      const t = stored.get(n);
      const layers = t ? await Promise.all(t.layers.map((d) => s.store.layer(d))) : [];
      const bytes = layers.reduce((a, l) => a + (l?.bytes ?? 0), 0);
      rows.push([n, t ? "built" : "not built", t ? formatSize(bytes) : "-", t?.source ?? BUILTIN_TEMPLATES.get(n)?.description ?? ""]);
    }
    process.stdout.write(`${table(["NAME", "STATE", "SIZE", "SOURCE"], rows)}\n`);
  });
tpl
  .command("build")
  .description("build a built-in template now (otherwise built on first use), or a new one from a Nix file (--nix) or an image archive (--oci)")
  .argument("<name>")
  .option("--nix <file>", "nix-build FILE and mount its closure at /nix/store (on the busybox template; its outputs' bin/ first in PATH)")
  .option("--share-host-store", "with --nix: mount the host's whole /nix/store read-only instead of the closure")
  .option("--oci <archive>", "docker save / podman save / OCI layout tar (plain or gzip) to import as template NAME")
  .action(async (name: string, f: { nix?: string; shareHostStore?: boolean; oci?: string }) => {
    if (f.shareHostStore && !f.nix) throw new InvalidArgumentError("--share-host-store needs --nix");
    if (f.nix && f.oci) throw new InvalidArgumentError("--nix and --oci exclude each other");
    const s = await open();
    const { nix: nixFile, oci } = f;
    const t = await withProgress(name, (onProgress) =>
      nixFile
        ? s.buildNixTemplate(name, nixFile, { shareHostStore: f.shareHostStore ?? false }, onProgress)
        : oci
          ? s.store.importOci(name, oci, onProgress)
          : s.store.ensureTemplate(name, onProgress),
    );
    process.stdout.write(`${t.name} ${t.layers.join(",")}${t.nix ? ` ${t.nix.storePaths.length} store path(s)` : ""}\n`);
  });

const snap = program.command("snapshot").description("snapshots of microVM sandboxes (acts on the state dir directly)");
snap
  .command("create")
  .description("save a running microVM (memory, devices, its disk if persistent); it runs on")
  .argument("<sandbox>")
  .argument("<name>")
  .action(async (ref: string, name: string) => {
    const s = await open();
    const x = await s.snapshot(ref, name);
    process.stdout.write(`${x.name} ${formatSize(x.bytes)}\n`);
  });
snap
  .command("restore")
  .description("a new sandbox that starts where the snapshot was, with its own identity")
  .argument("<name>")
  .option("--name <name>", "name of the new sandbox")
  .action(async (name: string, f: { name?: string }) => {
    const s = await open();
    const sb = await s.restoreSnapshot(name, f.name ? { name: f.name } : {});
    process.stdout.write(`${sb.name}\n`);
  });
snap
  .command("ls")
  .description("list snapshots")
  .action(async () => {
    const s = await open();
    const rows = s.listSnapshots().map((x) => [x.name, x.source, x.spec.template, formatSize(x.bytes), x.createdAt]);
    process.stdout.write(`${table(["NAME", "SOURCE", "TEMPLATE", "SIZE", "CREATED"], rows)}\n`);
  });
snap
  .command("rm")
  .description("delete a snapshot and its files")
  .argument("<name>")
  .action(async (name: string) => {
    const s = await open();
    await s.deleteSnapshot(name);
  });

program
  .command("daemon")
  .description("run corrald, the HTTP API (sandboxes keep running when it stops)")
  .option("--listen <host:port>", "loopback TCP address", "127.0.0.1:7070")
  .option("--socket <path>", "listen on a unix socket instead")
  .option("--body-limit <bytes>", "largest JSON request body", "1048576")
  .option("--admin-tenant <name>", "a tenant whose keys may change what all tenants share: templates, pools, the store, tenants, keys (repeatable)", collect, [])
  .option("--template-import-tenant <name>", "a tenant whose keys may import image archives as templates, shared by all tenants (repeatable)", collect, [])
  .action(async (f: { listen: string; socket?: string; bodyLimit: string; adminTenant: string[]; templateImportTenant: string[] }) => {
    const { startDaemon } = await import("../server/daemon.js");
    const stateDir = program.opts<GlobalFlags>().stateDir;
    const i = f.listen.lastIndexOf(":");
    const listen = f.socket ? { socket: f.socket } : { host: f.listen.slice(0, i), port: Number(f.listen.slice(i + 1)) };
    const d = await startDaemon({ ...(stateDir ? { stateDir } : {}), listen, bodyLimit: Number(f.bodyLimit), adminTenants: f.adminTenant, templateImporters: f.templateImportTenant });
    process.stdout.write(`corrald listening on ${d.url}\n`);
    const stop = () => {
      d.close().then(() => process.exit(0), () => process.exit(1));
    };
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
  });

const admin = program.command("admin").description("tenants and API keys (acts on the state dir directly)");
const key = admin.command("key").description("API keys");
key
  .command("create")
  .description("create an API key for a tenant (created if new); the key is printed once")
  .requiredOption("--tenant <name>")
  .action(async (f: { tenant: string }) => {
    const s = await open();
    process.stdout.write(`${s.tenants.createKey(f.tenant).key}\n`);
  });
key
  .command("ls")
  .description("list API keys (never the keys themselves)")
  .option("--tenant <name>")
  .action(async (f: { tenant?: string }) => {
    const s = await open();
    const rows = s.tenants.keys(f.tenant).map((k) => [k.id, k.tenant, k.createdAt, k.lastUsedAt ?? "-", k.revokedAt ? "revoked" : "active"]);
    process.stdout.write(`${table(["ID", "TENANT", "CREATED", "LAST USED", "STATE"], rows)}\n`);
  });
key
  .command("revoke")
  .argument("<id>")
  .action(async (id: string) => {
    const s = await open();
    s.tenants.revokeKey(id);
  });
const pool = admin.command("pool").description("warm pools of pre-started sandboxes, kept full by corrald");
pool
  .command("set")
  .description("keep SIZE sandboxes of a template (and resource shape) ready; 0 empties the pool")
  .argument("<template>")
  .requiredOption("--size <n>", "how many to keep ready")
  .option("-m, --memory <size>", "memory limit of the pooled sandboxes")
  .option("--cpus <n>", "CPU limit")
  .option("--pids <n>", "process limit")
  .option("--disk <size>", "writable layer size")
  .option("--backend <kind>", "container or vm (vm pools fill from a snapshot)", "container")
  .action(async (template: string, f: ResourceFlags & { size: string; backend: string }) => {
    const s = await open();
    const c = s.pools.set(template, resourcesFrom(f), Number(f.size), f.backend);
    process.stdout.write(`${c.key}\n`);
  });
pool
  .command("ls")
  .description("list pools and how full they are")
  .action(async () => {
    const s = await open();
    const rows = s.pools.list().map((p) => [p.key, p.template, p.backend, formatSize(p.resources.memory), String(p.target), String(p.ready)]);
    process.stdout.write(`${table(["POOL", "TEMPLATE", "BACKEND", "MEMORY", "TARGET", "READY"], rows)}\n`);
  });

const tenant = admin.command("tenant").description("tenants and their quotas");
tenant
  .command("create")
  .argument("<name>")
  .option("--max-sandboxes <n>", "most sandboxes at once")
  .option("--max-memory <size>", "most memory over all its sandboxes, e.g. 8G")
  .action(async (name: string, f: { maxSandboxes?: string; maxMemory?: string }) => {
    const s = await open();
    s.tenants.create(name, quotaFrom(f));
  });
tenant
  .command("quota")
  .argument("<name>")
  .option("--max-sandboxes <n>", "most sandboxes at once (none: unlimited)")
  .option("--max-memory <size>", "most memory over all its sandboxes (none: unlimited)")
  .action(async (name: string, f: { maxSandboxes?: string; maxMemory?: string }) => {
    const s = await open();
    s.tenants.setQuota(name, quotaFrom(f));
  });
tenant
  .command("ls")
  .action(async () => {
    const s = await open();
    const rows = s.tenants.list().map((t) => [t.id, t.maxSandboxes === null ? "-" : String(t.maxSandboxes), t.maxMemory === null ? "-" : formatSize(t.maxMemory)]);
    process.stdout.write(`${table(["TENANT", "MAX SANDBOXES", "MAX MEMORY"], rows)}\n`);
  });

function quotaFrom(f: { maxSandboxes?: string; maxMemory?: string }): { maxSandboxes?: number | null; maxMemory?: number | null } {
  const q: { maxSandboxes?: number | null; maxMemory?: number | null } = {};
  if (f.maxSandboxes !== undefined) q.maxSandboxes = f.maxSandboxes === "none" ? null : Number(f.maxSandboxes);
  if (f.maxMemory !== undefined) {
    const bytes = f.maxMemory === "none" ? null : parseSize(f.maxMemory);
    if (bytes === undefined) throw new InvalidArgumentError(`--max-memory must be a size like 8G, got ${f.maxMemory}`);
    q.maxMemory = bytes;
  }
  if (q.maxSandboxes !== undefined && q.maxSandboxes !== null && !(Number.isInteger(q.maxSandboxes) && q.maxSandboxes >= 0)) {
    throw new InvalidArgumentError("--max-sandboxes must be a whole number");
  }
  return q;
}

program
  .parseAsync(process.argv)
  .catch((e: unknown) => {
    process.stderr.write(`corral: ${messageOf(e)}\n`);
    if (process.env["CORRAL_DEBUG"] && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    process.exitCode = exitCodeOf(e);
  })
  .finally(() => chosen?.close());
