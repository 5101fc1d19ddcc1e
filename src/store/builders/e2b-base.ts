import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { BackendError } from "../../core/errors.js";
import type { BaseContext, TemplateBuilder } from "./builder.js";

/**
 * E2B's conventions (its SDK runs commands as `user`, uid 1000, with home
 * /home/user and `/bin/bash -l -c`) over the debian template, which has
 * bash. A layer of its own rather than another mmdebstrap run: the debian
 * layers are shared (stored once, one erofs image per stack for VMs),
 * this one is a few KiB and builds without a mirror, and debian stays as
 * it is for everyone else.
 */
export const E2B_USER = { name: "user", uid: 1000, gid: 1000, home: "/home/user", shell: "/bin/bash" } as const;

/** The account files the layer rewrites: the base's content plus one line each. */
const ACCOUNT_LINES: Readonly<Record<string, string>> = {
  "etc/passwd": `${E2B_USER.name}:x:${E2B_USER.uid}:${E2B_USER.gid}::${E2B_USER.home}:${E2B_USER.shell}`,
  "etc/group": `${E2B_USER.name}:x:${E2B_USER.gid}:`,
  // "*": no password can log in (nothing here asks for one: commands start as the user directly).
  "etc/shadow": `${E2B_USER.name}:*:19000:0:99999:7:::`,
  "etc/gshadow": `${E2B_USER.name}:!::`,
};

/** What a new home gets, as useradd -m copies it. */
const SKELETON = [".bashrc", ".profile", ".bash_logout"];

export const e2bBaseBuilder: TemplateBuilder = {
  name: "e2b-base",
  base: "debian",
  description: `debian plus E2B's user "${E2B_USER.name}" (uid ${E2B_USER.uid}, home ${E2B_USER.home}, ${E2B_USER.shell}): what E2B's SDK expects of its template "base"`,
  async build(dir, progress, base) {
    if (!base) throw new BackendError("e2b-base is built over the debian template's layers");
    progress({ phase: "start", message: `user ${E2B_USER.name} over debian`, percent: 0 });
    for (const d of ["etc", "home"]) await copyDir(base, d, dir);
    for (const [rel, line] of Object.entries(ACCOUNT_LINES)) {
      const from = topmost(base, rel);
      if (!from) throw new BackendError(`the debian template has no /${rel}`);
      const text = await fsp.readFile(from, "utf8");
      if (text.split("\n").some((l) => l.startsWith(`${E2B_USER.name}:`))) throw new BackendError(`the debian template already has "${E2B_USER.name}" in /${rel}`);
      await copyFile(base, from, path.join(dir, rel), `${text}${text.endsWith("\n") || text === "" ? "" : "\n"}${line}\n`);
    }
    const home = path.join(dir, E2B_USER.home);
    await fsp.mkdir(home, { mode: 0o755 });
    await fsp.chown(home, E2B_USER.uid, E2B_USER.gid);
    for (const f of SKELETON) {
      const from = topmost(base, `etc/skel/${f}`);
      if (!from) continue;
      await fsp.copyFile(from, path.join(home, f));
      await fsp.chown(path.join(home, f), E2B_USER.uid, E2B_USER.gid);
      await fsp.chmod(path.join(home, f), 0o644);
    }
    return { source: `e2b-base:user=${E2B_USER.name}:${E2B_USER.uid}` };
  },
};

/** The path in the uppermost base layer that has it (what the sandbox sees there). */
function topmost(base: BaseContext, rel: string): string | undefined {
  for (const l of [...base.layers].reverse()) {
    const p = path.join(l, rel);
    if (fs.existsSync(p)) return p;
  }
  return undefined;
}

/**
 * The ids a layer file of the base has inside a sandbox: layers are stored
 * shifted by uidBase, and the new layer is shifted again when stored, so
 * the build writes the unshifted ids.
 */
function sandboxIds(base: BaseContext, st: fs.Stats): { uid: number; gid: number } {
  return { uid: st.uid >= base.uidBase ? st.uid - base.uidBase : st.uid, gid: st.gid >= base.uidBase ? st.gid - base.uidBase : st.gid };
}

/**
 * The directory `rel` with the mode and owner it has in the base: an
 * overlay shows the upper layer's attributes for a directory both layers
 * have, so a copy that differed would change /etc for the sandbox.
 */
async function copyDir(base: BaseContext, rel: string, dir: string): Promise<void> {
  const from = topmost(base, rel);
  const to = path.join(dir, rel);
  await fsp.mkdir(to);
  if (!from) return;
  const st = await fsp.stat(from);
  const { uid, gid } = sandboxIds(base, st);
  await fsp.chown(to, uid, gid);
  await fsp.chmod(to, st.mode & 0o7777);
}

async function copyFile(base: BaseContext, from: string, to: string, content: string): Promise<void> {
  const st = await fsp.stat(from);
  const { uid, gid } = sandboxIds(base, st);
  await fsp.writeFile(to, content);
  await fsp.chown(to, uid, gid);
  await fsp.chmod(to, st.mode & 0o7777);
}
