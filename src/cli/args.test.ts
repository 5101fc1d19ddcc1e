import { test } from "node:test";
import assert from "node:assert/strict";
import { parse, UsageError, type CommandSpec, type Parsed } from "./args.js";
import { renderHelp } from "./help.js";

const noop = async () => {};
const root: CommandSpec = {
  name: "corral",
  help: "root",
  options: [{ flags: "--state-dir <dir>", help: "state" }],
  commands: [
    {
      name: "exec",
      help: "run a command",
      args: [{ name: "<sandbox>" }, { name: "<command...>", rest: true }],
      options: [
        { flags: "-e, --env <KEY=VALUE>", help: "env", repeat: true },
        { flags: "-i, --interactive", help: "stdin" },
        { flags: "-w, --workdir <dir>", help: "cwd" },
      ],
      run: noop,
    },
    { name: "ls", alias: "ps", help: "list", options: [{ flags: "--json", help: "json" }], run: noop },
    { name: "rm", help: "remove", args: [{ name: "<sandbox...>" }], options: [{ flags: "-f, --force", help: "force" }], run: noop },
    {
      name: "admin",
      help: "admin",
      commands: [
        {
          name: "pool",
          help: "pools",
          commands: [
            {
              name: "set",
              help: "set",
              args: [{ name: "<template>" }],
              options: [
                { flags: "--size <n>", help: "size", required: true },
                { flags: "--backend <kind>", help: "kind", default: "container" },
              ],
              run: noop,
            },
          ],
        },
      ],
    },
  ],
};

function run(...argv: string[]): Parsed {
  const o = parse(root, argv);
  assert.equal(o.kind, "run");
  return (o as { parsed: Parsed }).parsed;
}

function usage(argv: string[], message: RegExp): void {
  assert.throws(() => parse(root, argv), (e: unknown) => e instanceof UsageError && message.test(e.message));
}

test("options, arguments and the command after -- or after the sandbox", () => {
  const p = run("exec", "-e", "A=1", "--env=B=2", "-iw/tmp", "box", "--", "sh", "-c", "echo $A");
  assert.deepEqual(p.args, { sandbox: "box", command: ["sh", "-c", "echo $A"] });
  assert.deepEqual(p.opts, { env: ["A=1", "B=2"], interactive: true, workdir: "/tmp" });
  // Without --: everything from the command's first word on is the command's, its options too.
  assert.deepEqual(run("exec", "box", "ls", "-la", "--help").args, { sandbox: "box", command: ["ls", "-la", "--help"] });
  assert.deepEqual(run("exec", "box", "-e", "X=1", "env").opts["env"], ["X=1"]);
});

test("global options anywhere before --, aliases, defaults, repeatable lists empty by default", () => {
  const p = run("ls", "--state-dir", "/s", "--json");
  assert.deepEqual([p.globals, p.opts, p.path.map((c) => c.name)], [{ stateDir: "/s" }, { json: true }, ["corral", "ls"]]);
  assert.equal(run("--state-dir=/x", "ps").path[1]?.name, "ls");
  assert.deepEqual(run("exec", "b", "true").opts["env"], []);
  const set = run("admin", "pool", "set", "busybox", "--size", "2");
  assert.deepEqual([set.args, set.opts], [{ template: "busybox" }, { size: "2", backend: "container" }]);
  assert.deepEqual(run("rm", "-f", "a", "b").args, { sandbox: ["a", "b"] });
});

test("help: -h anywhere before the command, a group without its subcommand, `help CMD`", () => {
  assert.deepEqual(parse(root, ["exec", "-h"]), { kind: "help", path: [root, root.commands![0]], error: false });
  const group = parse(root, ["admin", "pool"]);
  assert.equal(group.kind === "help" && group.error, true);
  const h = parse(root, ["help", "admin", "pool", "set"]);
  assert.equal(h.kind === "help" && h.path.map((c) => c.name).join(" "), "corral admin pool set");
  assert.equal(parse(root, []).kind, "help");
});

test("mistakes are one line naming what is wrong", () => {
  usage(["exce"], /^unknown command "exce"; did you mean exec\?$/);
  usage(["ls", "--jsn"], /^unknown option --jsn; did you mean --json\?$/);
  usage(["ls", "-x"], /^unknown option -x$/);
  usage(["exec", "box"], /^missing <command\.\.\.> \(put it after --\)$/);
  usage(["exec"], /^missing <sandbox>$/);
  usage(["exec", "box", "-w"], /^option -w needs a value/);
  usage(["ls", "--json=yes"], /^option --json takes no value$/);
  usage(["ls", "extra"], /^unexpected argument "extra"$/);
  usage(["admin", "pool", "set", "busybox"], /^option --size is required$/);
  assert.throws(() => parse(root, ["admin", "pool", "nope"]), { command: "corral admin pool" });
});

test("help text: usage line, arguments, options with their defaults, subcommands", () => {
  const text = renderHelp([root, root.commands![3]!, root.commands![3]!.commands![0]!, root.commands![3]!.commands![0]!.commands![0]!]);
  assert.match(text, /^Usage: corral admin pool set \[options\] <template>\n\nset\n/);
  assert.match(text, /\n {2}--size <n> {8}size \(required\)\n/);
  assert.match(text, /\n {2}--backend <kind> {2}kind \(default: container\)\n/);
  assert.match(text, /\nGlobal options:\n {2}--state-dir <dir> {2}state\n/);
  const top = renderHelp([root], 60);
  assert.match(top, /\nCommands:\n {2}exec <sandbox> <command\.\.\.> {2}run a command\n/);
  assert.match(top, /\n {2}ls \(ps\) +list\n/);
  assert.match(top, /\n {2}help \[command\] +show a command's help\n/);
});
