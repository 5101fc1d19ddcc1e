#!/usr/bin/env node
import fs from "node:fs";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { Command, Option } from "commander";
import { CorralError, formatSize, InvalidArgumentError, parseSize } from "../spec/index.js";
import { Sandboxes, type SandboxInfo } from "../runtime/sandboxes.js";
import { BUILTIN_TEMPLATES } from "../store/store.js";
import { buildProgress } from "./progress.js";
import type { ProgressFn } from "../store/builders/builder.js";
import { age, keyValues, table, until } from "./format.js";

const program = new Command("corral")
  .description("sandboxes for untrusted code: containers and microVMs from one spec")
  .option("--state-dir <dir>", "state directory (default $CORRAL_STATE_DIR or /var/lib/corral)")
  .showHelpAfterError()
  .configureOutput({ outputError: (s, write) => write(s) });

function open(): Promise<Sandboxes> {
  const dir = program.opts<{ stateDir?: string }>().stateDir;
  return Sandboxes.open(dir ? { stateDir: dir } : {});
}

const collect = (v: string, prev: string[]) => [...prev, v];

function specOptions(cmd: Command): Command {
  return cmd
    .option("--name <name>", "sandbox name (default: generated)")
    .option("-t, --template <name>", "template to start from", "debian")
    .option("--backend <kind>", "container or vm", "container")
    .option("-m, --memory <size>", "memory limit, e.g. 512M")
    .option("--cpus <n>", "CPU limit in cores, e.g. 0.5")
    .option("--pids <n>", "maximum number of processes")
    .option("--disk <size>", "size of the writable layer, e.g. 1G")
    .option("-e, --env <KEY=VALUE>", "environment variable (repeatable)", collect, [])
    .option("-w, --workdir <dir>", "working directory")
    .option("-l, --label <KEY=VALUE>", "label (repeatable)", collect, [])
    .option("--persistent", "keep the sandbox (and its disk) until removed")
    .option("--timeout <seconds>", "remove the sandbox after this many seconds");
}

interface SpecFlags {
  name?: string;
  template: string;
  backend: string;
  memory?: string;
  cpus?: string;
  pids?: string;
  disk?: string;
  env: string[];
  workdir?: string;
  label: string[];
  persistent?: boolean;
  timeout?: string;
}

/** CLI flags → SandboxSpec input; validation (with field paths) is parseSpec's. */
function specFrom(f: SpecFlags): Record<string, unknown> {
  const resources: Record<string, unknown> = {};
  if (f.memory !== undefined) resources["memory"] = f.memory;
  if (f.disk !== undefined) resources["disk"] = f.disk;
  if (f.cpus !== undefined) resources["vcpus"] = Number(f.cpus);
  if (f.pids !== undefined) resources["pids"] = Number(f.pids);
  const lifetime: Record<string, unknown> = { mode: f.persistent ? "persistent" : "ephemeral" };
  if (f.timeout !== undefined) lifetime["timeoutSeconds"] = Number(f.timeout);
  const spec: Record<string, unknown> = {
    template: f.template,
    backend: f.backend,
    resources,
    env: keyValues(f.env, "--env"),
    labels: keyValues(f.label, "--label"),
    lifetime,
  };
  if (f.name !== undefined) spec["name"] = f.name;
  if (f.workdir !== undefined) spec["workdir"] = f.workdir;
  return spec;
}

/** Runs `fn` with a progress display for template builds it may start. */
async function withProgress<T>(template: string, fn: (onProgress: ProgressFn) => Promise<T>): Promise<T> {
  const p = buildProgress(`building template ${template}`);
  try {
    return await fn(p.onProgress);
  } finally {
    p.done();
  }
}

function createWithProgress(s: Sandboxes, spec: Record<string, unknown>): Promise<SandboxInfo> {
  return withProgress(String(spec["template"]), (onProgress) => s.create(spec, { onProgress }));
}

/** Runs argv in a sandbox with the terminal's streams; returns the exit code. */
async function execInteractive(
  s: Sandboxes,
  ref: string,
  argv: string[],
  o: { env?: Record<string, string>; workdir?: string; interactive?: boolean; timeout?: string },
): Promise<number> {
  if (argv.length === 0) throw new InvalidArgumentError("no command given (put it after --)");
  const client = await s.agent(ref);
  const rec = await s.record(ref);
  try {
    const stats = await s.stats(ref);
    const handle = client.exec(
      {
        argv,
        env: { ...rec.spec.env, ...o.env },
        cwd: o.workdir ?? rec.spec.workdir,
        stdin: o.interactive ?? false,
        ...(o.timeout ? { timeoutMs: Number(o.timeout) * 1000 } : {}),
      },
      { onStdout: (b) => process.stdout.write(b), onStderr: (b) => process.stderr.write(b) },
    );
    const forward = (sig: NodeJS.Signals) => () => void handle.kill(sig === "SIGINT" ? 2 : 15).catch(() => {});
    process.on("SIGINT", forward("SIGINT"));
    process.on("SIGTERM", forward("SIGTERM"));
    if (o.interactive) {
      void (async () => {
        for await (const chunk of process.stdin) await handle.writeStdin(chunk as Buffer);
        await handle.closeStdin();
      })().catch(() => {});
    }
    const r = await handle.result;
    if (o.interactive) process.stdin.destroy();
    if (r.timedOut) process.stderr.write(`corral: the command timed out after ${o.timeout}s and was killed\n`);
    if (r.signal === 9 && (await s.stats(ref)).oomKills > stats.oomKills) {
      process.stderr.write(`corral: the command was killed by the OOM killer (memory limit ${formatSize(rec.spec.resources.memory)})\n`);
    }
    return r.exitCode ?? 128 + (r.signal ?? 0);
  } finally {
    client.close();
  }
}

specOptions(program.command("run"))
  .description("start a throwaway sandbox, run a command in it, remove it")
  .argument("<command...>", "command and arguments (after --)")
  .option("-i, --interactive", "pass stdin to the command")
  .action(async (argv: string[], f: SpecFlags & { interactive?: boolean }) => {
    const s = await open();
    const sb = await createWithProgress(s, specFrom(f));
    let code = 125;
    try {
      code = await execInteractive(s, sb.id, argv, f.interactive ? { interactive: true } : {});
    } finally {
      await s.destroy(sb.id);
    }
    process.exitCode = code;
  });

specOptions(program.command("create"))
  .description("start a sandbox and print its name")
  .action(async (f: SpecFlags) => {
    const s = await open();
    const sb = await createWithProgress(s, specFrom(f));
    process.stdout.write(`${sb.name}\n`);
  });

program
  .command("exec")
  .description("run a command in a sandbox; exits with the command's status")
  .argument("<sandbox>", "name or id")
  .argument("<command...>", "command and arguments (after --)")
  .option("-e, --env <KEY=VALUE>", "environment variable (repeatable)", collect, [])
  .option("-w, --workdir <dir>", "working directory")
  .option("-i, --interactive", "pass stdin to the command")
  .option("--timeout <seconds>", "kill the command after this many seconds")
  .action(async (ref: string, argv: string[], f: { env: string[]; workdir?: string; interactive?: boolean; timeout?: string }) => {
    const s = await open();
    const o: Parameters<typeof execInteractive>[3] = { env: keyValues(f.env, "--env") };
    if (f.workdir) o.workdir = f.workdir;
    if (f.interactive) o.interactive = true;
    if (f.timeout) o.timeout = f.timeout;
    process.exitCode = await execInteractive(s, ref, argv, o);
  });

program
  .command("cp")
  .description("copy a file between the host and a sandbox: cp SRC SANDBOX:PATH or cp SANDBOX:PATH DST")
  .argument("<src>")
  .argument("<dst>")
  .action(async (src: string, dst: string) => {
    const s = await open();
    const from = remote(src);
    const to = remote(dst);
    if (!!from === !!to) throw new InvalidArgumentError("exactly one of SRC and DST must be SANDBOX:PATH");
    if (to) {
      const st = fs.statSync(src);
      if (!st.isFile()) throw new InvalidArgumentError(`${src} is not a regular file (copying directories is not supported yet)`);
      const client = await s.agent(to.ref);
      try {
        let target = to.path;
        if (target.endsWith("/") || (await client.stat(target).then((x) => x.type === "dir", () => false))) {
          target = path.posix.join(target, path.basename(src));
        }
        await client.writeFile(target, fs.createReadStream(src), { mode: st.mode & 0o777, mkdirs: true });
      } finally {
        client.close();
      }
    } else if (from) {
      const client = await s.agent(from.ref);
      try {
        let target = dst;
        if (fs.statSync(dst, { throwIfNoEntry: false })?.isDirectory()) target = path.join(dst, path.posix.basename(from.path));
        const st = await client.stat(from.path);
        if (st.type !== "file") throw new InvalidArgumentError(`${src} is a ${st.type}, not a file`);
        await pipeline(client.readFile(from.path), fs.createWriteStream(target, { mode: st.mode & 0o777 }));
      } finally {
        client.close();
      }
    }
  });

function remote(arg: string): { ref: string; path: string } | undefined {
  if (arg.startsWith("/") || arg.startsWith(".")) return undefined;
  const i = arg.indexOf(":");
  if (i <= 0) return undefined;
  const p = arg.slice(i + 1);
  return { ref: arg.slice(0, i), path: p.startsWith("/") ? p : `/${p}` };
}

program
  .command("ls")
  .alias("ps")
  .description("list sandboxes")
  .option("--json", "print JSON")
  .action(async (f: { json?: boolean }) => {
    const s = await open();
    const all = await s.list();
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
  .command("inspect")
  .description("print a sandbox's record and usage as JSON")
  .argument("<sandbox>")
  .action(async (ref: string) => {
    const s = await open();
    const info = await s.get(ref);
    const usage = info.status === "running" ? await s.stats(ref) : null;
    process.stdout.write(`${JSON.stringify({ ...info, usage }, null, 2)}\n`);
  });

program
  .command("rm")
  .description("stop and remove sandboxes")
  .argument("<sandbox...>")
  .option("-f, --force", "ignore sandboxes that do not exist")
  .action(async (refs: string[], f: { force?: boolean }) => {
    const s = await open();
    for (const ref of refs) {
      try {
        await s.destroy(ref);
      } catch (e) {
        if (!(f.force && e instanceof CorralError && e.status === 404)) throw e;
      }
    }
  });

const tpl = program.command("template").description("manage templates");
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
  .description("build a built-in template now (otherwise built on first use)")
  .argument("<name>")
  .action(async (name: string) => {
    const s = await open();
    const t = await withProgress(name, (onProgress) => s.store.ensureTemplate(name, onProgress));
    process.stdout.write(`${t.name} ${t.layers.join(",")}\n`);
  });

program
  .command("daemon")
  .description("run corrald, the HTTP API (sandboxes keep running when it stops)")
  .option("--listen <host:port>", "loopback TCP address", "127.0.0.1:7070")
  .option("--socket <path>", "listen on a unix socket instead")
  .option("--body-limit <bytes>", "largest JSON request body", "1048576")
  .action(async (f: { listen: string; socket?: string; bodyLimit: string }) => {
    const { startDaemon } = await import("../server/daemon.js");
    const stateDir = program.opts<{ stateDir?: string }>().stateDir;
    const i = f.listen.lastIndexOf(":");
    const listen = f.socket ? { socket: f.socket } : { host: f.listen.slice(0, i), port: Number(f.listen.slice(i + 1)) };
    const d = await startDaemon({ ...(stateDir ? { stateDir } : {}), listen, bodyLimit: Number(f.bodyLimit) });
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

program.parseAsync(process.argv).catch((e: unknown) => {
  const msg = e instanceof Error ? e.message : String(e);
  process.stderr.write(`corral: ${msg}\n`);
  if (process.env["CORRAL_DEBUG"] && e instanceof Error) process.stderr.write(`${e.stack}\n`);
  process.exitCode = e instanceof CorralError && e.status < 500 ? 1 : 125;
});
