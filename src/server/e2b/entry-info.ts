import path from "node:path";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { FileStat } from "../../agent/client.js";
import type { Accounts } from "./accounts.js";
import { FileType, type EntryInfoSchema } from "./gen/filesystem/filesystem_pb.js";

export type EntryInit = MessageInitShape<typeof EntryInfoSchema>;

const TYPES: Readonly<Record<FileStat["type"], FileType>> = {
  file: FileType.FILE,
  dir: FileType.DIRECTORY,
  symlink: FileType.SYMLINK,
  // Sockets, fifos, devices: the SDK leaves entries of no known type out of its lists.
  other: FileType.UNSPECIFIED,
};

/**
 * An entry as envd describes it: `permissions` as Go's FileMode prints it
 * (the E2B SDK shows it as is: "drwxr-xr-x", "-rw-r--r--", "Lrwxrwxrwx"
 * for a symlink), `mode` the permission bits, owner and group by name
 * where the sandbox's accounts have one, by number otherwise.
 */
export function entryInfo(p: string, st: Pick<FileStat, "type" | "size" | "mode" | "mtimeMs"> & Partial<Pick<FileStat, "uid" | "gid" | "target">>, accounts: Accounts): EntryInit {
  return {
    name: path.posix.basename(p),
    type: TYPES[st.type],
    path: p,
    size: BigInt(st.size),
    mode: st.mode & 0o777,
    permissions: permissions(st.type, st.mode),
    owner: st.uid === undefined ? "" : (accounts.userNames.get(st.uid) ?? String(st.uid)),
    group: st.gid === undefined ? "" : (accounts.groupNames.get(st.gid) ?? String(st.gid)),
    modifiedTime: timestampFromMs(st.mtimeMs),
    ...(st.type === "symlink" && st.target ? { symlinkTarget: path.posix.resolve(path.posix.dirname(p), st.target) } : {}),
  };
}

/** Go's os.FileMode.String() for a file of this type and these mode bits. */
export function permissions(type: FileStat["type"], mode: number): string {
  let prefix = type === "dir" ? "d" : type === "symlink" ? "L" : "";
  if (mode & 0o4000) prefix += "u";
  if (mode & 0o2000) prefix += "g";
  if (mode & 0o1000) prefix += "t";
  const rwx = "rwxrwxrwx";
  let bits = "";
  for (let i = 0; i < 9; i++) bits += mode & (1 << (8 - i)) ? rwx[i] : "-";
  return `${prefix || "-"}${bits}`;
}
