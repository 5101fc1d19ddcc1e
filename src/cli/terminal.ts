import os from "node:os";
import { formatSize } from "../core/size.js";
import { stdout } from "./stdio.js";
import { onInterrupt, type CliTarget } from "./target.js";

/** What `shell` and `exec -t` run: a command (a login shell by default) on a terminal in the sandbox. */
export interface TerminalRequest {
  argv: string[];
  env: Record<string, string>;
  workdir?: string;
}

/** bash where the sandbox has it, else sh: a login shell either way. */
export const LOGIN_SHELL = ["/bin/sh", "-c", "if [ -x /bin/bash ]; then exec /bin/bash -l; else exec /bin/sh -l; fi"];

const SIGINT = os.constants.signals.SIGINT;

/**
 * Runs a command on a terminal in the sandbox with this process's
 * terminal as its screen and keyboard: stdin in raw mode (so Ctrl-C, Ctrl-Z
 * and Ctrl-D are bytes for the sandbox's terminal to act on, reaching its
 * foreground process, not this one), its window size passed on at the
 * start and on every SIGWINCH, and its exit status returned (128 + the
 * signal for one a signal ended). A SIGINT sent to this process (from
 * elsewhere than its keyboard) is passed on as Ctrl-C; SIGTERM kills the
 * command. Without a terminal (stdin a pipe) the bytes go through as
 * they are, and its end is a Ctrl-D.
 */
export async function runTerminal(target: CliTarget, ref: string, req: TerminalRequest): Promise<number> {
  const input = process.stdin;
  const screen = process.stdout;
  const out = stdout();
  const size = () => ({ rows: screen.rows || 24, cols: screen.columns || 80 });
  const session = await target.terminal(ref, {
    argv: req.argv,
    env: { TERM: process.env["TERM"] || "xterm-256color", ...req.env },
    ...(req.workdir ? { workdir: req.workdir } : {}),
    size: size(),
    onOutput: (b) => out.write(b),
  });
  const raw = input.isTTY === true;
  if (raw) input.setRawMode(true);
  const send = (b: Buffer) => void session.write(b).catch(() => {});
  const onData = (b: Buffer) => send(b);
  const onEnd = () => send(Buffer.from([4])); // Ctrl-D: the end of input at a prompt
  const onResize = () => void session.resize(size()).catch(() => {});
  input.on("data", onData);
  input.once("end", onEnd);
  screen.on("resize", onResize);
  const stop = onInterrupt((signo) => (signo === SIGINT ? send(Buffer.from([3])) : void session.kill().catch(() => {})));
  try {
    const end = await session.done;
    if (end.timedOut) process.stderr.write("\r\ncorral: the command timed out and was killed\r\n");
    if (end.oom) process.stderr.write(`\r\ncorral: the command was killed by the OOM killer (memory limit ${formatSize(end.oom.memoryLimit)})\r\n`);
    return end.exitCode ?? 128 + (end.signal ?? 0);
  } finally {
    stop();
    screen.off("resize", onResize);
    input.off("data", onData);
    input.off("end", onEnd);
    if (raw) input.setRawMode(false);
    input.pause();
    input.unref?.();
  }
}
