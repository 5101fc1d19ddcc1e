import fsp from "node:fs/promises";

/** Mount points of this process's mount namespace (field 5 of mountinfo). */
export async function mountPoints(): Promise<string[]> {
  const text = await fsp.readFile("/proc/self/mountinfo", "utf8");
  return text
    .split("\n")
    .filter(Boolean)
    .map((l) => unescapeMountPath(l.split(" ")[4] ?? ""));
}

function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}
