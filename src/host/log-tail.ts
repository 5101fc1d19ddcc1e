import fsp from "node:fs/promises";

/**
 * The last `lines` non-empty lines of a log file (a VM's console, a
 * shim's or crun's log), trimmed and joined with " | " for one-line error
 * messages; "" when there is no such file.
 */
export async function logTail(file: string, lines: number): Promise<string> {
  const text = await fsp.readFile(file, "utf8").catch(() => "");
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-lines)
    .join(" | ");
}
