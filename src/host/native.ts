import path from "node:path";
import { fileURLToPath } from "node:url";

/** dist/native, where `npm run build` puts the static binaries. */
export const NATIVE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../native");

export function nativeBinary(name: "corral-agent" | "corral-launch" | "corral-init" | "corral-netjoin"): string {
  return path.join(NATIVE_DIR, name);
}
