import { TarFormatError, type TarEntry, type TarEntryType } from "./tar-parser.js";

/** What a layer's OCI whiteout markers ask for once it is extracted. */
export interface WhiteoutPlan {
  /** Marker files to delete after extraction (`.wh.*`), layer-relative. */
  readonly markers: readonly string[];
  /** Paths to hide from the layers below: each becomes a 0/0 character device unless this layer has the path itself. */
  readonly whiteouts: readonly string[];
  /** Directories whose lower contents are hidden (`.wh..wh..opq`); "" is the layer root. */
  readonly opaqueDirs: readonly string[];
}

const WH = ".wh.";
const OPAQUE = ".wh..wh..opq";

/**
 * Checks each member of an image layer before GNU tar sees it, so that
 * extraction cannot write outside the layer directory: no absolute names,
 * no `..`, nothing under (or replacing) a symlink this layer made, hard
 * links only to members already extracted from this layer. Collects the
 * whiteout markers on the way.
 */
export class LayerRules {
  private readonly kinds = new Map<string, TarEntryType>();
  private readonly symlinks = new Set<string>();
  private readonly markers: string[] = [];
  private readonly whiteouts = new Set<string>();
  private readonly opaque = new Set<string>();

  check(e: TarEntry): void {
    const p = normalize(e.name, "member");
    if (p === "") {
      if (e.type !== "directory") throw unsafe(e.name, "the layer root must be a directory");
      return;
    }
    this.noSymlinkOnTheWay(p, e.name);
    if (e.type === "hardlink") {
      const target = normalize(e.linkname, "hard link target");
      this.noSymlinkOnTheWay(target, e.linkname);
      const kind = this.kinds.get(target);
      if (kind === undefined || kind === "directory") throw unsafe(e.name, `it is a hard link to "${e.linkname}", which is not an earlier file of this layer`);
    }
    this.kinds.set(p, e.type);
    if (e.type === "symlink") this.symlinks.add(p);

    const slash = p.lastIndexOf("/");
    const dir = slash < 0 ? "" : p.slice(0, slash);
    const base = p.slice(slash + 1);
    if (!base.startsWith(WH)) return;
    if (e.type === "directory") throw unsafe(e.name, "a whiteout marker must not be a directory");
    this.markers.push(p);
    if (base === OPAQUE) this.opaque.add(dir);
    else if (!base.startsWith(`${WH}${WH}`)) {
      // .wh..wh.* other than .wh..wh..opq is aufs bookkeeping: dropped.
      const hidden = base.slice(WH.length);
      if (hidden === "" || hidden === "." || hidden === "..") throw unsafe(e.name, "it is a whiteout of nothing");
      this.whiteouts.add(dir ? `${dir}/${hidden}` : hidden);
    }
  }

  plan(): WhiteoutPlan {
    return { markers: [...this.markers], whiteouts: [...this.whiteouts], opaqueDirs: [...this.opaque] };
  }

  /** Every proper ancestor, and the path itself, must not be a symlink of this layer. */
  private noSymlinkOnTheWay(p: string, original: string): void {
    let i = -1;
    do {
      i = p.indexOf("/", i + 1);
      const prefix = i < 0 ? p : p.slice(0, i);
      if (this.symlinks.has(prefix)) throw unsafe(original, `"${prefix}" is a symlink in this layer`);
    } while (i >= 0);
  }
}

/** A member name relative to the layer root without "." parts; "" is the root. */
export function normalize(name: string, what: string): string {
  if (name.startsWith("/")) throw unsafe(name, `absolute ${what} name`);
  if (name.includes("\0")) throw unsafe(name, "NUL in name");
  const parts = name.split("/").filter((x) => x !== "" && x !== ".");
  if (parts.includes("..")) throw unsafe(name, `".." in ${what} name`);
  return parts.join("/");
}

function unsafe(name: string, why: string): TarFormatError {
  return new TarFormatError(`unsafe layer member "${name}": ${why}`);
}
