import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { AgentClient, ProcessInfo } from "../../agent/client.js";
import { SandboxOperationError } from "../../core/errors.js";
import type { EnvdEnv, EnvdTarget } from "./envd-target.js";
import { toConnectError } from "./errors.js";
import { MAX_SUBSCRIBERS, Subscriber, endInfo, type ProcessConfigOut, type ProcessTable } from "./processes.js";
import type { ProcessEventSchema, ProcessSelector } from "./gen/process/process_pb.js";

export type EventInit = MessageInitShape<typeof ProcessEventSchema>;

/** Seconds between keepalive events when a stream is quiet, unless the client asks (`Keepalive-Ping-Interval`; the SDK asks 50). */
const DEFAULT_KEEPALIVE_S = 50;

export interface JoinEnv extends EnvdEnv {
  readonly processes: ProcessTable;
}

/**
 * Joins a command the sandbox's agent runs, whoever started it (this
 * corrald, an earlier one before a restart, corral's own API): on an agent
 * connection of its own, the agent replays what the command printed last
 * (its ring: 64 KiB of a background command's output), then streams the
 * rest and the exit. A client that reads slowly holds only this
 * connection (the command waits on its writes, as at a terminal).
 */
export async function* joinProcess(env: JoinEnv, t: EnvdTarget, sel: ProcessSelector | undefined, ctx: HandlerContext): AsyncGenerator<{ event: EventInit }> {
  const client = await env.sandboxes.agent(t.record.id, { tenant: t.record.tenant }).catch((e: unknown) => Promise.reject(toConnectError(e)));
  let release: (() => void) | undefined;
  const q = new Subscriber(() => {});
  try {
    const info = await agentProcess(env, t, client, sel);
    release = env.processes.joinSlot(t.record.id, info.pid, (error) => q.push({ kind: "failed", error }));
    if (!release) throw new ConnectError(`${MAX_SUBSCRIBERS} streams already follow process ${info.pid}`, Code.FailedPrecondition);
    const out = (kind: "stdout" | "stderr") => (data: Buffer) => {
      q.push({ kind: info.pty ? "pty" : kind, data });
      return q.full ? q.whenDrained() : undefined;
    };
    const handle = client.attach(info.pid, { onStdout: out("stdout"), onStderr: out("stderr") });
    handle.result.then(
      (r) => q.push({ kind: "end", end: endInfo(r) }),
      (error: unknown) => q.push({ kind: "failed", error }),
    );
    try {
      await handle.pid;
    } catch (e) {
      throw toConnectError(goneAsNotFound(e, info.pid));
    }
    yield { event: { event: { case: "start", value: { pid: info.pid } } } };
    yield* follow(q, ctx, (event) => ({ event }));
  } finally {
    q.close();
    release?.();
    client.close(); // the agent detaches the command from a connection that goes
  }
}

/** The running command a selector names, as the agent knows it (NotFound when it runs none). */
export async function agentProcess(env: JoinEnv, t: EnvdTarget, client: AgentClient, sel: ProcessSelector | undefined): Promise<ProcessInfo> {
  const s = sel?.selector;
  const list = await client.processes().catch((e: unknown) => Promise.reject(toConnectError(e)));
  const tagged = s?.case === "tag" ? (env.processes.byTag(t.record.id, s.value)?.pid ?? list.find((p) => p.tag === s.value)?.pid) : undefined;
  const pid = s?.case === "pid" ? s.value : tagged;
  const found = list.find((p) => p.pid === pid);
  if (!found) throw new ConnectError(`process with ${s?.case ?? "pid"} ${String(s?.value ?? "(none)")} not found`, Code.NotFound);
  return found;
}

/**
 * A command's config as envd lists it: this corrald's record when it
 * started it, else what the agent knows (its argv without the setpriv
 * that ran it as its user; no environment).
 */
export function listedConfig(p: ProcessInfo, known: ProcessConfigOut | undefined): ProcessConfigOut {
  if (known) return known;
  let argv = p.argv;
  const sep = argv.indexOf("--");
  if (argv[0] === "setpriv" && sep > 0) argv = argv.slice(sep + 1);
  return { cmd: argv[0] ?? "", args: argv.slice(1), envs: {}, cwd: p.cwd };
}

/** An agent's ESRCH for a pid is envd's not_found (the SDK's `false` from kill). */
export function goneAsNotFound(e: unknown, pid: number): unknown {
  return e instanceof SandboxOperationError && e.errno === "ESRCH" ? new ConnectError(`process with pid ${pid} not found`, Code.NotFound) : e;
}

/** Events of one stream until the command's end (or the client's), with a keepalive when it is quiet. */
export async function* follow<T>(sub: Subscriber, ctx: HandlerContext, wrap: (e: EventInit) => T): AsyncGenerator<T> {
  const asked = Number(ctx.requestHeader.get("keepalive-ping-interval"));
  const idleMs = (Number.isFinite(asked) && asked >= 1 && asked <= 3600 ? asked : DEFAULT_KEEPALIVE_S) * 1000;
  const gone = () => sub.close();
  ctx.signal.addEventListener("abort", gone);
  try {
    for (;;) {
      const e = await sub.next(idleMs);
      if (e === undefined) break;
      if (e === "idle") yield wrap({ event: { case: "keepalive", value: {} } });
      else if (e.kind === "end") {
        yield wrap({ event: { case: "end", value: e.end } });
        return;
      } else if (e.kind === "failed") throw toConnectError(e.error);
      else yield wrap({ event: { case: "data", value: { output: { case: e.kind, value: e.data } } } });
    }
    // Closed by the request's end: a deadline is the client's TimeoutError, not a clean end.
    if (ctx.signal.aborted) throw ConnectError.from(ctx.signal.reason);
  } finally {
    ctx.signal.removeEventListener("abort", gone);
    sub.close();
  }
}
