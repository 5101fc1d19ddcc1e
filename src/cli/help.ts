import { argName, commandLine, type CommandSpec } from "./args.js";

const HELP_OPTION = { flags: "-h, --help", help: "show this help" };

/** A command's help, laid out as commander's (usage, description, arguments, options, subcommands), wrapped to `width`. */
export function renderHelp(path: readonly CommandSpec[], width = 100): string {
  const cmd = path[path.length - 1]!;
  const root = path[0]!;
  const out: string[] = [];
  const args = (cmd.args ?? []).map((a) => a.name).join(" ");
  const usage = [commandLine(path), cmd.options?.length || cmd === root ? "[options]" : "", cmd.commands ? "<command>" : "", args].filter(Boolean).join(" ");
  out.push(`Usage: ${usage}`, "", cmd.help);

  const described = (cmd.args ?? []).filter((a) => a.help);
  if (described.length) out.push("", "Arguments:", ...columns(described.map((a) => [argName(a), a.help ?? ""]), width));

  const own = [...(cmd.options ?? []), HELP_OPTION];
  out.push("", "Options:", ...columns(own.map((o) => [o.flags, describeOption(o)]), width));
  if (cmd !== root && root.options?.length) {
    out.push("", "Global options:", ...columns(root.options.map((o) => [o.flags, describeOption(o)]), width));
  }

  if (cmd.commands) {
    const rows = cmd.commands.map((c) => [[c.name, ...(c.alias ? [`(${c.alias})`] : []), ...(c.args ?? []).map((a) => a.name)].join(" "), c.help]);
    if (cmd === root) rows.push(["help [command]", "show a command's help"]);
    out.push("", "Commands:", ...columns(rows as [string, string][], width));
  }
  if (cmd.epilog) out.push("", ...wrap(cmd.epilog, width));
  return `${out.join("\n")}\n`;
}

function describeOption(o: { flags: string; help: string; default?: string; repeat?: boolean; required?: boolean }): string {
  const extra = [o.required ? "required" : "", o.repeat ? "repeatable" : "", o.default !== undefined ? `default: ${o.default}` : ""].filter(Boolean);
  return extra.length ? `${o.help} (${extra.join(", ")})` : o.help;
}

/** Two columns: the terms padded to the widest (at most 32), descriptions wrapped beside them. */
function columns(rows: readonly (readonly [string, string])[], width: number): string[] {
  const termWidth = Math.min(32, Math.max(...rows.map(([t]) => t.length)));
  const textWidth = Math.max(30, width - termWidth - 4);
  const lines: string[] = [];
  for (const [term, text] of rows) {
    const wrapped = wrap(text, textWidth);
    const pad = " ".repeat(termWidth + 4);
    if (term.length > termWidth) lines.push(`  ${term}`, ...wrapped.map((l) => pad + l));
    else lines.push(`  ${term.padEnd(termWidth)}  ${wrapped[0] ?? ""}`.trimEnd(), ...wrapped.slice(1).map((l) => pad + l));
  }
  return lines;
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}
