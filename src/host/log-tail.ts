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

/**
 * The last `maxBytes` of the files joined in order (a rotated log first,
 * then the current one); missing files read as empty.
 */
export async function tailOfFiles(files: readonly string[], maxBytes: number): Promise<string> {
  const text = (await Promise.all(files.map((f) => fsp.readFile(f, "utf8").catch(() => "")))).join("");
  return text.length > maxBytes ? text.slice(text.length - maxBytes) : text;
}
