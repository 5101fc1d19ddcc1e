/**
 * The command line, declared as data and parsed without loading any
 * command's code. Not commander: loading commander (and the child_process,
 * net and stream modules it requires) took 15-25 ms of the 30 ms `corral
 * --help` may spend over bare `node -e 0` (measured interleaved, 40 runs,
 * on the 2-core bench host); this file and help.ts take ~1 ms.
 *
 * Syntax, as commander's: options anywhere before `--` (the root's, global
 * ones, too), `--opt value`, `--opt=value`, `-o value`, `-ovalue`, boolean
 * short flags grouped (`-fi`). An argument declared `<command...>` with
 * `rest: true` takes everything from its first word on verbatim, so
 * `corral exec box ls -la` needs no `--`.
 */

export interface OptionSpec {
  /** "-e, --env <KEY=VALUE>", "--json", "--size <n>". */
  readonly flags: string;
  readonly help: string;
  /** Value when the option is not given (shown in help). */
  readonly default?: string;
  /** May be given several times; the value is the list (default empty). */
  readonly repeat?: boolean;
  readonly required?: boolean;
}

export interface ArgSpec {
  /** "<sandbox>" (required), "[name]" (optional), "<command...>" (one or more). */
  readonly name: string;
  readonly help?: string;
  /** A variadic argument that takes every word after its first verbatim, options included. */
  readonly rest?: boolean;
}

/** What a command's code gets: its arguments by name, its options (and the global ones) by camelCase name. */
export interface Parsed {
  readonly path: readonly CommandSpec[];
  readonly args: Readonly<Record<string, string | readonly string[] | undefined>>;
  readonly opts: Readonly<Record<string, string | boolean | readonly string[] | undefined>>;
  readonly globals: Readonly<Record<string, string | boolean | readonly string[] | undefined>>;
}

export interface CommandSpec {
  readonly name: string;
  readonly alias?: string;
  readonly help: string;
  readonly args?: readonly ArgSpec[];
  readonly options?: readonly OptionSpec[];
  readonly commands?: readonly CommandSpec[];
  /** Text after the generated help. */
  readonly epilog?: string;
  /** Loads the command's code (a dynamic import) and runs it; resolves to the exit code. */
  readonly run?: (p: Parsed) => Promise<number | void>;
}

/** A mistake on the command line: one line, exit 1, and the command whose help to read. */
export class UsageError extends Error {
  readonly status = 400;
  readonly code = "usage";
  constructor(
    message: string,
    readonly command: string,
  ) {
    super(message);
    this.name = "UsageError";
  }
}

/** The outcome of parsing: a command to run, or help to print. */
export type Outcome = { readonly kind: "run"; readonly parsed: Parsed } | { readonly kind: "help"; readonly path: readonly CommandSpec[]; readonly error: boolean };

interface Opt {
  readonly spec: OptionSpec;
  readonly short: string | undefined;
  readonly long: string;
  readonly key: string;
  readonly takesValue: boolean;
}

export function optionOf(spec: OptionSpec): Opt {
  const m = /^(?:-([A-Za-z]),\s*)?--([a-z][a-z0-9-]*)(?:\s+[<[](.+)[>\]])?$/.exec(spec.flags);
  if (!m) throw new Error(`bad option flags: ${spec.flags}`);
  const long = m[2]!;
  return { spec, short: m[1], long, key: camel(long), takesValue: m[3] !== undefined };
}

function camel(s: string): string {
  return s.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** The argument's bare name: "<command...>" → "command". */
export function argName(a: ArgSpec): string {
  return a.name.replace(/^[<[]|\.\.\.|[>\]]$/g, "");
}

const variadic = (a: ArgSpec) => a.name.includes("...");
const optional = (a: ArgSpec) => a.name.startsWith("[");

/** The command's words as typed: "corral admin key create". */
export function commandLine(path: readonly CommandSpec[]): string {
  return path.map((c) => c.name).join(" ");
}

/** Parses argv (without node and the script) against the root command. */
export function parse(root: CommandSpec, argv: readonly string[]): Outcome {
  const path: CommandSpec[] = [root];
  const globalOpts = (root.options ?? []).map(optionOf);
  let cmdOpts: Opt[] = [];
  const globals: Record<string, string | boolean | string[]> = {};
  const opts: Record<string, string | boolean | string[]> = {};
  const words: string[] = [];
  let help = false;
  let restFrom = Infinity; // index in `words` from which everything is verbatim
  const here = () => path[path.length - 1]!;
  const usage = (msg: string) => new UsageError(msg, commandLine(path));

  const set = (o: Opt, value: string | true) => {
    const into = cmdOpts.includes(o) ? opts : globals;
    if (o.spec.repeat) into[o.key] = [...((into[o.key] as string[] | undefined) ?? []), value as string];
    else into[o.key] = value;
  };
  const find = (pred: (o: Opt) => boolean) => cmdOpts.find(pred) ?? globalOpts.find(pred);

  for (let i = 0; i < argv.length; i++) {
    const w = argv[i]!;
    if (words.length >= restFrom) {
      words.push(w);
      continue;
    }
    if (w === "--") {
      words.push(...argv.slice(i + 1));
      break;
    }
    if (w === "-h" || w === "--help") {
      help = true;
      continue;
    }
    if (w.startsWith("--")) {
      const eq = w.indexOf("=");
      const name = w.slice(2, eq < 0 ? undefined : eq);
      const o = find((x) => x.long === name);
      if (!o) throw usage(`unknown option --${name}${hint(name, [...cmdOpts, ...globalOpts].map((x) => x.long), "--")}`);
      if (!o.takesValue) {
        if (eq >= 0) throw usage(`option --${name} takes no value`);
        set(o, true);
      } else if (eq >= 0) set(o, w.slice(eq + 1));
      else {
        if (i + 1 >= argv.length) throw usage(`option --${name} needs a value (${o.spec.flags})`);
        set(o, argv[++i]!);
      }
      continue;
    }
    if (w.startsWith("-") && w.length > 1) {
      for (let j = 1; j < w.length; j++) {
        const c = w[j]!;
        const o = find((x) => x.short === c);
        if (!o) throw usage(`unknown option -${c}`);
        if (!o.takesValue) {
          set(o, true);
          continue;
        }
        if (j + 1 < w.length) set(o, w.slice(j + 1));
        else if (i + 1 < argv.length) set(o, argv[++i]!);
        else throw usage(`option -${c} needs a value (${o.spec.flags})`);
        break;
      }
      continue;
    }
    const cmd = here();
    if (cmd.commands && words.length === 0) {
      const sub = cmd.commands.find((c) => c.name === w || c.alias === w);
      if (!sub) {
        if (w === "help" && cmd === root) return helpFor(root, argv.slice(i + 1));
        throw usage(`unknown command "${w}"${hint(w, cmd.commands.map((c) => c.name), "")}`);
      }
      path.push(sub);
      cmdOpts = (sub.options ?? []).map(optionOf);
      const r = (sub.args ?? []).findIndex((a) => a.rest);
      if (r >= 0) restFrom = r + 1; // verbatim after the rest argument's first word
      continue;
    }
    words.push(w);
  }

  const cmd = here();
  if (help) return { kind: "help", path, error: false };
  if (!cmd.run) return { kind: "help", path, error: true };

  const args: Record<string, string | string[] | undefined> = {};
  const specs = cmd.args ?? [];
  let k = 0;
  for (const a of specs) {
    const name = argName(a);
    if (variadic(a)) {
      args[name] = words.slice(k);
      k = words.length;
      if ((args[name] as string[]).length === 0 && !optional(a)) throw usage(`missing ${a.name}${a.rest ? " (put it after --)" : ""}`);
    } else {
      args[name] = words[k];
      if (words[k] === undefined && !optional(a)) throw usage(`missing ${a.name}`);
      k++;
    }
  }
  if (k < words.length) throw usage(`unexpected argument "${words[k]}"`);
  for (const o of cmdOpts) {
    if (opts[o.key] !== undefined) continue;
    if (o.spec.required) throw usage(`option --${o.long} is required`);
    if (o.spec.repeat) opts[o.key] = [];
    else if (o.spec.default !== undefined) opts[o.key] = o.spec.default;
  }
  for (const o of globalOpts) if (globals[o.key] === undefined && o.spec.default !== undefined) globals[o.key] = o.spec.default;
  return { kind: "run", parsed: { path, args, opts, globals } };
}

/** `corral help [command...]`. */
function helpFor(root: CommandSpec, words: readonly string[]): Outcome {
  const path: CommandSpec[] = [root];
  for (const w of words) {
    const sub = path[path.length - 1]!.commands?.find((c) => c.name === w || c.alias === w);
    if (!sub) throw new UsageError(`unknown command "${w}"`, commandLine(path));
    path.push(sub);
  }
  return { kind: "help", path, error: false };
}

/** "; did you mean exec?" for a near miss (edit distance ≤ 2), else "". */
function hint(word: string, names: readonly string[], prefix: string): string {
  let best: string | undefined;
  let bestD = 3;
  for (const n of names) {
    const d = distance(word, n);
    if (d < bestD) [best, bestD] = [n, d];
  }
  return best === undefined ? "" : `; did you mean ${prefix}${best}?`;
}

function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}
