import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { basicAuthUser, envdTarget, requestUser, type EnvdEnv, type EnvdTarget } from "./envd-target.js";
import { resolvePath, type SandboxUser } from "./accounts.js";
import { toConnectError } from "./errors.js";
import { E2bProcess, MAX_PROCESSES_PER_SANDBOX, MAX_SUBSCRIBERS, endInfo, type ProcessTable, type Subscriber } from "./processes.js";
import { Process, Signal, type ProcessEventSchema, type ProcessSelector } from "./gen/process/process_pb.js";

type EventInit = MessageInitShape<typeof ProcessEventSchema>;

/** Seconds between keepalive events when a command is quiet, unless the client asks (`Keepalive-Ping-Interval`; the SDK asks 50). */
const DEFAULT_KEEPALIVE_S = 50;

/** Said where corral's agent cannot yet do what an RPC asks (no faking: the SDK shows this as a SandboxError). */
export const NO_PTY = "a terminal (pty) needs PTY support in corral's agent, which this corrald does not have yet";

export interface ProcessEnv extends EnvdEnv {
  readonly processes: ProcessTable;
}

/**
 * envd's Process service over corral: a command is an agent exec in the
 * sandbox (keepAlive: it outlives the request, as envd's; its
 * Connect-Timeout-Ms is its timeout), run as the request's user through
 * setpriv, with envd's environment (HOME, USER, LOGNAME, the sandbox's
 * variables, then the request's) and working directory (the home).
 */
export function processService(env: ProcessEnv): ServiceImpl<typeof Process> {
  const target = (ctx: HandlerContext) => envdTarget(env, (h) => ctx.requestHeader.get(h) ?? undefined);
  return {
    async list(_req, ctx) {
      const t = guard(() => target(ctx));
      return {
        processes: env.processes.list(t.record.id).map((p) => ({
          pid: p.pid,
          ...(p.tag !== undefined ? { tag: p.tag } : {}),
          config: { cmd: p.config.cmd, args: [...p.config.args], envs: { ...p.config.envs }, ...(p.config.cwd !== undefined ? { cwd: p.config.cwd } : {}) },
        })),
      };
    },

    async *start(req, ctx) {
      const t = guard(() => target(ctx));
      if (req.pty) throw new ConnectError(NO_PTY, Code.Unimplemented);
      const cfg = req.process;
      if (!cfg?.cmd) throw new ConnectError("process.cmd is required", Code.InvalidArgument);
      if (env.processes.count(t.record.id) >= MAX_PROCESSES_PER_SANDBOX) {
        throw new ConnectError(`a sandbox may run at most ${MAX_PROCESSES_PER_SANDBOX} commands through the E2B API at once`, Code.ResourceExhausted);
      }
      const lease = t.lease();
      let user: SandboxUser;
      try {
        user = await guardAsync(() => requestUser(env, t, lease, basicAuthUser(ctx.requestHeader.get("authorization") ?? undefined)));
      } finally {
        lease.close();
      }
      const cwd = guard(() => resolvePath(cfg.cwd ?? "", user));
      const stdin = req.stdin === undefined || req.stdin;
      const proc = new E2bProcess(t.record.id, { cmd: cfg.cmd, args: cfg.args, envs: cfg.envs, cwd: cfg.cwd }, req.tag, stdin);
      const sub = proc.subscribe()!;
      const timeoutMs = Number(ctx.requestHeader.get("connect-timeout-ms") ?? 0);
      try {
        const started = await env.sandboxes.startExec(
          t.record.id,
          {
            argv: asUser(user, [cfg.cmd, ...cfg.args]),
            env: { HOME: user.home, USER: user.name, LOGNAME: user.name, ...cfg.envs },
            cwd,
            stdin,
            keepAlive: true,
            ...(Number.isInteger(timeoutMs) && timeoutMs > 0 ? { timeoutMs } : {}),
          },
          { onStdout: (b) => proc.output("stdout", b), onStderr: (b) => proc.output("stderr", b) },
          { tenant: t.record.tenant },
        );
        proc.handle = started.handle;
        try {
          proc.pid = await started.handle.pid;
        } catch (e) {
          started.end();
          throw e;
        }
        env.processes.add(proc);
        void started.outcome
          .then(
            (r) => proc.finish({ kind: "end", end: endInfo(r) }),
            (e: unknown) => proc.finish({ kind: "failed", error: e }),
          )
          .finally(() => {
            started.end();
            env.processes.remove(proc);
          });
      } catch (e) {
        sub.close();
        throw startError(e, cfg.cmd, user);
      }
      yield { event: { event: { case: "start", value: { pid: proc.pid } } } };
      yield* follow(sub, ctx, (event) => ({ event }));
    },

    async *connect(req, ctx) {
      const t = guard(() => target(ctx));
      const proc = selected(env, t, req.process);
      const sub = proc.subscribe();
      if (!sub) throw new ConnectError(`${MAX_SUBSCRIBERS} streams already follow process ${proc.pid}`, Code.FailedPrecondition);
      yield { event: { event: { case: "start", value: { pid: proc.pid } } } };
      yield* follow(sub, ctx, (event) => ({ event }));
    },

    async update(req, ctx) {
      const t = guard(() => target(ctx));
      selected(env, t, req.process);
      throw new ConnectError(NO_PTY, Code.Unimplemented);
    },

    async sendInput(req, ctx) {
      const t = guard(() => target(ctx));
      await writeInput(selected(env, t, req.process), req.input?.input);
      return {};
    },

    async streamInput(reqs, ctx) {
      const t = guard(() => target(ctx));
      let proc: E2bProcess | undefined;
      for await (const r of reqs) {
        if (r.event.case === "start") proc = selected(env, t, r.event.value.process);
        else if (r.event.case === "data") {
          if (!proc) throw new ConnectError("a stream of input starts with the process it is for", Code.InvalidArgument);
          await writeInput(proc, r.event.value.input?.input);
        }
      }
      return {};
    },

    async sendSignal(req, ctx) {
      const t = guard(() => target(ctx));
      const proc = selected(env, t, req.process);
      if (req.signal !== Signal.SIGKILL && req.signal !== Signal.SIGTERM) throw new ConnectError("signal must be SIGKILL or SIGTERM", Code.InvalidArgument);
      await guardAsync(() => proc.handle!.kill(req.signal));
      return {};
    },

    async closeStdin(req, ctx) {
      const t = guard(() => target(ctx));
      const proc = selected(env, t, req.process);
      if (proc.stdin) await guardAsync(() => proc.handle!.closeStdin());
      return {};
    },
  };
}

/** The program and its arguments, started as `user`: root's as they are, another's through setpriv (util-linux). */
export function asUser(user: SandboxUser, argv: string[]): string[] {
  if (user.uid === 0) return argv;
  return ["setpriv", `--reuid=${user.uid}`, `--regid=${user.gid}`, "--init-groups", "--", ...argv];
}

/** Events of one stream until the command's end (or the client's), with a keepalive when it is quiet. */
async function* follow<T>(sub: Subscriber, ctx: HandlerContext, wrap: (e: EventInit) => T): AsyncGenerator<T> {
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

function selected(env: ProcessEnv, t: EnvdTarget, sel: ProcessSelector | undefined): E2bProcess {
  const s = sel?.selector;
  const p = s?.case === "pid" ? env.processes.byPid(t.record.id, s.value) : s?.case === "tag" ? env.processes.byTag(t.record.id, s.value) : undefined;
  if (!p) throw new ConnectError(`process with ${s?.case ?? "pid"} ${String(s?.value ?? "(none)")} not found`, Code.NotFound);
  return p;
}

async function writeInput(proc: E2bProcess, input: { case: "stdin" | "pty"; value: Uint8Array } | { case: undefined; value?: undefined } | undefined): Promise<void> {
  if (input?.case === "pty") throw new ConnectError(NO_PTY, Code.Unimplemented);
  if (input?.case !== "stdin") throw new ConnectError("input.stdin is required", Code.InvalidArgument);
  if (!proc.stdin) throw new ConnectError("stdin is not enabled for this process (start it with stdin: true)", Code.FailedPrecondition);
  await guardAsync(() => proc.handle!.writeStdin(Buffer.from(input.value)));
}

/** Why a command did not start, said as envd says it (the SDK shows the message). */
function startError(e: unknown, cmd: string, user: SandboxUser): ConnectError {
  const ce = toConnectError(e);
  if (user.uid !== 0 && /setpriv/.test(ce.rawMessage)) {
    return new ConnectError(`cannot run as "${user.name}": the sandbox's template has no setpriv (util-linux); run as root or use a template with it`, Code.FailedPrecondition);
  }
  if (ce.code === Code.NotFound) return new ConnectError(`error starting process '${cmd}': ${ce.rawMessage}`, Code.InvalidArgument);
  return ce;
}

function guard<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw toConnectError(e);
  }
}

async function guardAsync<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw toConnectError(e);
  }
}
