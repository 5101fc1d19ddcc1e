import fs from "node:fs";
import path from "node:path";
import type { TestState } from "./state.js";

/**
 * A file of a sandbox's host cgroup: under the controller's hierarchy on a
 * v1 host (`memory`, `pids`), in the one hierarchy on v2 (where `v1name`
 * maps to `v2name`). Undefined when the file does not exist.
 */
export function sandboxCgroupFile(t: TestState, id: string, controller: string, v1name: string, v2name = v1name): string | undefined {
  const f = t.s.cgroupMode === "v2" ? path.join("/sys/fs/cgroup", t.cgroupParent, id, v2name) : path.join("/sys/fs/cgroup", controller, t.cgroupParent, id, v1name);
  return fs.existsSync(f) ? f : undefined;
}

/** The number in a sandbox's cgroup file, or a `key value` line's value in it. */
export function readCgroupNumber(file: string, key?: string): number {
  const text = fs.readFileSync(file, "utf8");
  if (key === undefined) return text.trim() === "max" ? Infinity : Number(text.trim());
  return Number(new RegExp(`^${key} (\\d+)$`, "m").exec(text)?.[1] ?? NaN);
}
