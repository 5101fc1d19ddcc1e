import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { AgentClient, TerminalSize } from "../../agent/client.js";
import { basicAuthUser, envdTarget, requestUser, type EnvdTarget } from "./envd-target.js";
import { resolvePath, type SandboxUser } from "./accounts.js";
import { toConnectError } from "./errors.js";
import { E2bProcess, MAX_PROCESSES_PER_SANDBOX, endInfo } from "./processes.js";
import { agentProcess, follow, goneAsNotFound, joinProcess, listedConfig, type JoinEnv } from "./process-join.js";
import { Process, Signal, type ProcessSelector } from "./gen/process/process_pb.js";

export type ProcessEnv = JoinEnv;

/** A tag the agent keeps with a command (its limit). */
const MAX_TAG_BYTES = 256;
/** Terminal sizes the agent takes (a winsize is two u16s; 0 is no size). */
const MAX_TERMINAL_CELLS = 65535;

type Input = { case: "stdin" | "pty"; value: Uint8Array } | { case: undefined; value?: undefined } | undefined;

/**
 * envd's Process service over corral: a command is an agent exec in the
 * sandbox (keepAlive: it outlives the request, as envd's, and the agent
 * keeps its last output for Connect; its Connect-Timeout-Ms is its
 * timeout), run as the request's user through setpriv, with envd's
 * environment (HOME, USER, LOGNAME, the sandbox's variables, then the
 * request's) and working directory (the home); with `pty`, on a terminal
 * of the agent's. A command this corrald did not start (an earlier one's,
 * before a restart) is reached through the agent by its pid.
 */
export function processService(env: ProcessEnv): ServiceImpl<typeof Process> {
  const target = (ctx: HandlerContext) => guard(() => envdTarget(env, (h) => ctx.requestHeader.get(h) ?? undefined));
  /** `fn` on an agent connection of the request's own. */
  const withAgent = async <T>(t: EnvdTarget, fn: (c: AgentClient) => Promise<T>): Promise<T> => {
    const lease = t.lease();
    try {
      return await guardAsync(async () => fn(await lease.get()));
    } finally {
      lease.close();
    }
  };
  const known = (t: EnvdTarget, sel: ProcessSelector | undefined): E2bProcess | undefined => {
    const s = sel?.selector;
    return s?.case === "pid" ? env.processes.byPid(t.record.id, s.value) : s?.case === "tag" ? env.processes.byTag(t.record.id, s.value) : undefined;
  };

  return {
    // The agent's background commands (every command started through envd is one), with this corrald's record of those it started.
    async list(_req, ctx) {
      const t = target(ctx);
      const running = await withAgent(t, (c) => c.processes());
      return {
        processes: running
          .filter((p) => p.keepAlive)
          .map((p) => {
            const mine = env.processes.byPid(t.record.id, p.pid);
            const cfg = listedConfig(p, mine?.config);
            const tag = mine?.tag ?? p.tag ?? undefined;
            return {
              pid: p.pid,
              ...(tag !== undefined ? { tag } : {}),
              config: { cmd: cfg.cmd, args: [...cfg.args], envs: { ...cfg.envs }, ...(cfg.cwd !== undefined ? { cwd: cfg.cwd } : {}) },
            };
          }),
      };
    },

    async *start(req, ctx) {
      const t = target(ctx);
      const cfg = req.process;
      if (!cfg?.cmd) throw new ConnectError("process.cmd is required", Code.InvalidArgument);
      const size = req.pty ? terminalSize(req.pty.size) : undefined;
      if (req.tag !== undefined && Buffer.byteLength(req.tag) > MAX_TAG_BYTES) throw new ConnectError(`tag is longer than ${MAX_TAG_BYTES} bytes`, Code.InvalidArgument);
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
      const stdin = size !== undefined || req.stdin === undefined || req.stdin;
      const proc = new E2bProcess(t.record.id, { cmd: cfg.cmd, args: cfg.args, envs: cfg.envs, cwd: cfg.cwd }, req.tag, stdin, size !== undefined);
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
            ...(size ? { pty: size } : {}),
            ...(req.tag !== undefined ? { tag: req.tag } : {}),
            ...(Number.isInteger(timeoutMs) && timeoutMs > 0 ? { timeoutMs } : {}),
          },
          // A terminal's output is all on its stdout (the agent's pty): envd's "pty" output.
          { onStdout: (b) => proc.output(proc.pty ? "pty" : "stdout", b), onStderr: (b) => proc.output("stderr", b) },
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
      yield* joinProcess(env, target(ctx), req.process, ctx);
    },

    async update(req, ctx) {
      const t = target(ctx);
      if (!req.pty) return {};
      const size = terminalSize(req.pty.size);
      const mine = known(t, req.process);
      if (mine) await guardAsync(() => mine.handle!.resize(size));
      else await withAgent(t, async (c) => c.resize((await agentProcess(env, t, c, req.process)).pid, size));
      return {};
    },

    async sendInput(req, ctx) {
      const t = target(ctx);
      await writeInput(t, req.process, req.input?.input);
      return {};
    },

    async streamInput(reqs, ctx) {
      const t = target(ctx);
      let sel: ProcessSelector | undefined;
      for await (const r of reqs) {
        if (r.event.case === "start") sel = r.event.value.process;
        else if (r.event.case === "data") {
          if (!sel) throw new ConnectError("a stream of input starts with the process it is for", Code.InvalidArgument);
          await writeInput(t, sel, r.event.value.input?.input);
        }
      }
      return {};
    },

    async sendSignal(req, ctx) {
      const t = target(ctx);
      if (req.signal !== Signal.SIGKILL && req.signal !== Signal.SIGTERM) throw new ConnectError("signal must be SIGKILL or SIGTERM", Code.InvalidArgument);
      const mine = known(t, req.process);
      if (mine) await guardAsync(() => mine.handle!.kill(req.signal));
      else {
        await withAgent(t, async (c) => {
          const pid = (await agentProcess(env, t, c, req.process)).pid;
          await c.signalPid(pid, req.signal).catch((e: unknown) => Promise.reject(goneAsNotFound(e, pid)));
        });
      }
      return {};
    },

    async closeStdin(req, ctx) {
      const t = target(ctx);
      const mine = known(t, req.process);
      if (mine) {
        if (mine.stdin) await guardAsync(() => mine.handle!.closeStdin());
      } else {
        await withAgent(t, async (c) => c.writeStdinPid((await agentProcess(env, t, c, req.process)).pid, undefined, true));
      }
      return {};
    },
  };

  /** Input to a command: through its exec stream when this corrald started it, else to the agent by pid. */
  async function writeInput(t: EnvdTarget, sel: ProcessSelector | undefined, input: Input): Promise<void> {
    if (input?.case !== "stdin" && input?.case !== "pty") throw new ConnectError("input.stdin or input.pty is required", Code.InvalidArgument);
    const data = Buffer.from(input.value);
    const mine = known(t, sel);
    if (mine) {
      checkInput(input.case, mine.pty, mine.stdin);
      await guardAsync(() => mine.handle!.writeStdin(data));
      return;
    }
    await withAgent(t, async (c) => {
      const p = await agentProcess(env, t, c, sel);
      // The agent drops input for a command without stdin; whether it has one it does not say.
      checkInput(input.case, p.pty, true);
      await c.writeStdinPid(p.pid, data);
    });
  }
}

/** pty input is for a terminal; stdin needs a command started with stdin (envd's rules). */
function checkInput(kind: "stdin" | "pty", pty: boolean, stdin: boolean): void {
  if (kind === "pty" && !pty) throw new ConnectError("the process has no terminal (start it with pty) to send pty input to", Code.FailedPrecondition);
  if (kind === "stdin" && !stdin) throw new ConnectError("stdin is not enabled for this process (start it with stdin: true)", Code.FailedPrecondition);
}

/** A terminal size as the agent takes it. */
function terminalSize(size: { rows: number; cols: number } | undefined): TerminalSize {
  const rows = size?.rows ?? 0;
  const cols = size?.cols ?? 0;
  if (rows < 1 || cols < 1 || rows > MAX_TERMINAL_CELLS || cols > MAX_TERMINAL_CELLS) {
    throw new ConnectError(`pty.size needs rows and cols from 1 to ${MAX_TERMINAL_CELLS}, got ${rows}x${cols}`, Code.InvalidArgument);
  }
  return { rows, cols };
}

/** The program and its arguments, started as `user`: root's as they are, another's through setpriv (util-linux). */
export function asUser(user: SandboxUser, argv: string[]): string[] {
  if (user.uid === 0) return argv;
  return ["setpriv", `--reuid=${user.uid}`, `--regid=${user.gid}`, "--init-groups", "--", ...argv];
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
