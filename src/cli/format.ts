import { InvalidArgumentError } from "../core/errors.js";

/** Renders rows as an aligned text table (docker ps style). */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("   ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

/** Time since `fromIso`: 75 s → "1m15s", 3700 s → "1h1m". */
export function age(fromIso: string, now = Date.now()): string {
  return duration((now - Date.parse(fromIso)) / 1000);
}

/** Time until `toIso`. */
export function until(toIso: string, now = Date.now()): string {
  return duration((Date.parse(toIso) - now) / 1000);
}

function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}

/** ["A=1", "B=x=y"] → {A: "1", B: "x=y"} */
export function keyValues(list: readonly string[], what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list) {
    const i = item.indexOf("=");
    if (i <= 0) throw new InvalidArgumentError(`${what} must be KEY=VALUE, got "${item}"`);
    out[item.slice(0, i)] = item.slice(i + 1);
  }
  return out;
}
