#!/usr/bin/env node
// The `corral` command: parse the line against program.ts, run the one
// command it names (its code imported only now), print one line for an
// error. The exit status is the command's, 1 for a refused request or a
// bad command line, 125 when corral or the host failed, 141 when stdout's
// reader went away. help.js and exit.js too are imported only when they
// are needed (each module costs ~0.5 ms to load).
import { parse } from "./args.js";
import { closeContexts } from "./context.js";
import { program } from "./program.js";
import { EXIT_STDOUT_CLOSED, stderr, stdout, stdoutClosed } from "./stdio.js";

async function main(argv: readonly string[]): Promise<number> {
  const outcome = parse(program, argv);
  if (outcome.kind === "help") {
    const { renderHelp } = await import("./help.js");
    const tty = outcome.error ? process.stderr : process.stdout;
    await (outcome.error ? stderr() : stdout()).write(renderHelp(outcome.path, Math.min(tty.columns || 100, 120)));
    return outcome.error ? 1 : 0;
  }
  const cmd = outcome.parsed.path[outcome.parsed.path.length - 1]!;
  return (await cmd.run!(outcome.parsed)) ?? 0;
}

main(process.argv.slice(2))
  .then(
    (code) => {
      process.exitCode = stdoutClosed() ? EXIT_STDOUT_CLOSED : code;
    },
    async (e: unknown) => {
      if (stdoutClosed()) {
        process.exitCode = EXIT_STDOUT_CLOSED;
        return;
      }
      const { exitCodeOf, messageOf } = await import("./exit.js");
      process.stderr.write(`corral: ${messageOf(e)}\n`);
      if (process.env["CORRAL_DEBUG"] && e instanceof Error) process.stderr.write(`${e.stack}\n`);
      process.exitCode = exitCodeOf(e);
    },
  )
  .finally(closeContexts);
