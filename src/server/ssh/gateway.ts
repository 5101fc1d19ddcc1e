import type { Duplex } from "node:stream";
import ssh2 from "ssh2";
import type { Connection, PublicKeyAuthContext, ServerChannel, Session } from "ssh2";
import type { FastifyBaseLogger } from "fastify";
import type { AgentClient } from "../../agent/client.js";
import type { ServerContext } from "../context.js";
import { hostKey } from "./host-keys.js";
import { forwardTcp, MAX_FORWARDS } from "./forward.js";
import { serveSftp } from "./sftp.js";

/** A login shell where the sandbox has bash, else sh (as `corral shell`). */
const LOGIN_SHELL = ["/bin/sh", "-c", "if [ -x /bin/bash ]; then exec /bin/bash -l; else exec /bin/sh -l; fi"];
/** Environment variables a client may send (OpenSSH's AcceptEnv default in Debian: LANG and LC_*). */
const ACCEPT_ENV = /^(LANG|LC_[A-Z_]+)$/;
/** Sessions one SSH connection may have open at once (ssh's ControlMaster multiplexes them). */
const MAX_SESSIONS = 32;

/**
 * An SSH server for one sandbox on one byte stream (`corral ssh-proxy`'s,
 * through the sshSession operation): ssh2 speaks the protocol with the
 * sandbox's own host key; a login is a public key registered for the
 * sandbox's tenant (`corral admin ssh-key add`), on top of the API key
 * the stream was opened with. Sessions run through the sandbox's agent:
 * a shell or a command (on a terminal when the client asks for one:
 * pty-req, window-change), and the sftp subsystem (which scp uses) on
 * the agent's file operations, so a busybox template needs no sshd; -L
 * (direct-tcpip) to the sandbox's loopback through the agent's connect
 * stream (forward.ts). Remote forwarding (-R) is refused.
 */
export function serveSsh(ctx: ServerContext, tenant: string, sandboxId: string, stream: Duplex, log: FastifyBaseLogger): void {
  const key = hostKey(ctx.sandboxes.stateDir, sandboxId);
  const server = new ssh2.Server({ hostKeys: [key.privateKey], ident: "corral" }, (client) => onClient(ctx, tenant, sandboxId, client, log));
  server.on("error", () => {});
  server.injectSocket(stream as unknown as import("node:net").Socket);
}

function onClient(ctx: ServerContext, tenant: string, sandboxId: string, client: Connection, log: FastifyBaseLogger): void {
  let agent: Promise<AgentClient> | undefined;
  const agentOf = () => (agent ??= ctx.sandboxes.agent(sandboxId, { tenant }));
  let sessions = 0;
  client.on("authentication", (auth) => {
    if (auth.method !== "publickey") return auth.reject(["publickey"]);
    if (!publicKeyOk(ctx, tenant, auth)) return auth.reject(["publickey"]);
    auth.accept();
  });
  client.on("ready", () => {
    client.on("session", (accept, reject) => {
      if (sessions >= MAX_SESSIONS) return reject();
      sessions++;
      const session = accept();
      session.once("close", () => sessions--);
      runSession(ctx, tenant, sandboxId, session, agentOf, log);
    });
    let forwards = 0;
    client.on("tcpip", (accept, reject, info) => {
      if (forwards >= MAX_FORWARDS) return reject();
      forwards++;
      const acceptCounted = () => {
        const ch = accept();
        ch.once("close", () => forwards--);
        return ch;
      };
      const rejectCounted = () => {
        forwards--;
        reject();
      };
      void forwardTcp(info, acceptCounted, rejectCounted, () => ctx.sandboxes.agent(sandboxId, { tenant })).catch((e: Error) => log.warn({ err: e, sandbox: sandboxId }, "ssh forward failed"));
    });
    // -R (tcpip-forward) would listen inside the sandbox: not offered.
    client.on("request", (_accept, reject) => reject?.());
  });
  client.on("error", () => {});
  client.on("close", () => {
    void agent?.then((a) => a.close(), () => {});
  });
}

/** A registered key of the tenant, and (once signed) a signature that verifies. */
function publicKeyOk(ctx: ServerContext, tenant: string, auth: PublicKeyAuthContext): boolean {
  if (!ctx.sandboxes.sshKeys.allows(tenant, auth.key.data)) return false;
  if (!auth.signature) return true; // the client asks whether the key would do; it signs next
  const type = auth.key.data.subarray(4, 4 + auth.key.data.readUInt32BE(0)).toString();
  const parsed = ssh2.utils.parseKey(`${type} ${auth.key.data.toString("base64")}`);
  const pub = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!pub || pub instanceof Error) return false;
  return pub.verify(auth.blob!, auth.signature, auth.hashAlgo) === true;
}

interface Term {
  rows: number;
  cols: number;
  term: string;
}

function runSession(ctx: ServerContext, tenant: string, sandboxId: string, session: Session, agentOf: () => Promise<AgentClient>, log: FastifyBaseLogger): void {
  let term: Term | undefined;
  const env: Record<string, string> = {};
  let resize: ((t: Term) => void) | undefined;
  session.on("pty", (accept, _reject, info) => {
    term = { rows: info.rows || 24, cols: info.cols || 80, term: info.term || "xterm" };
    accept?.();
  });
  session.on("window-change", (accept, _reject, info) => {
    if (term) {
      term = { ...term, rows: info.rows, cols: info.cols };
      resize?.(term);
    }
    accept?.();
  });
  session.on("env", (accept, reject, info) => {
    if (ACCEPT_ENV.test(info.key)) {
      env[info.key] = info.val;
      accept?.();
    } else reject?.();
  });
  const start = (argv: string[], channel: ServerChannel) => {
    void runCommand(ctx, tenant, sandboxId, argv, term, env, channel, (fn) => (resize = fn)).catch((e: Error) => {
      log.warn({ err: e, sandbox: sandboxId }, "ssh session failed");
      channel.stderr.write(`corral: ${e.message}\r\n`);
      channel.exit(255);
      channel.end();
    });
  };
  session.on("shell", (accept) => start(LOGIN_SHELL, accept()));
  session.on("exec", (accept, _reject, info) => start(["/bin/sh", "-c", info.command], accept()));
  session.on("sftp", (accept) => serveSftp(accept(), agentOf()));
}

/** A shell or command on the sandbox's agent, wired to an SSH channel: stdin, output, terminal size, exit status. */
async function runCommand(
  ctx: ServerContext,
  tenant: string,
  sandboxId: string,
  argv: string[],
  term: Term | undefined,
  env: Record<string, string>,
  channel: ServerChannel,
  onResize: (fn: (t: Term) => void) => void,
): Promise<void> {
  const drained = (w: { write(b: Buffer): boolean; once(e: "drain", f: () => void): unknown }, b: Buffer) => (w.write(b) ? undefined : new Promise<void>((r) => w.once("drain", r)));
  const { handle, outcome, end } = await ctx.sandboxes.startExec(
    sandboxId,
    {
      argv,
      env: { ...env, ...(term ? { TERM: term.term } : {}) },
      stdin: true,
      ...(term ? { pty: { rows: term.rows, cols: term.cols } } : {}),
    },
    { onStdout: (b) => drained(channel, b), onStderr: (b) => drained(channel.stderr, b) },
    { tenant },
  );
  onResize((t) => void handle.resize({ rows: t.rows, cols: t.cols }).catch(() => {}));
  channel.on("data", (d: Buffer) => void handle.writeStdin(d).catch(() => {}));
  channel.on("end", () => void (term ? undefined : handle.closeStdin().catch(() => {})));
  channel.on("close", () => end()); // the client went: the command goes too
  try {
    const r = await outcome;
    if (r.exitCode !== null) channel.exit(r.exitCode);
    else channel.exit(signalName(r.signal ?? 9), false, "");
  } finally {
    end();
    channel.end();
  }
}

function signalName(n: number): string {
  const names: Record<number, string> = { 1: "HUP", 2: "INT", 3: "QUIT", 6: "ABRT", 9: "KILL", 13: "PIPE", 14: "ALRM", 15: "TERM" };
  return names[n] ?? "KILL";
}
