// `corral snapshot`: save a running microVM, restore it into new sandboxes,
// list and delete snapshots. snapshot-local.ts acts on the state dir (the
// local tenant's snapshots, as the other commands act on its sandboxes),
// snapshot-remote.ts on a daemon (the key's tenant's).
import { formatSize } from "../../core/size.js";
import type { Context } from "../context.js";
import { table } from "../format.js";
import { print } from "../stdio.js";
import { sideOf, type Action } from "./action.js";

/** A snapshot as the commands print it. */
export interface SnapshotRow {
  readonly name: string;
  /** The sandbox it was taken of. */
  readonly source: string;
  readonly template: string;
  readonly bytes: number;
  readonly createdAt: string;
}

export interface SnapshotSide {
  create(sandbox: string, name: string): Promise<SnapshotRow>;
  /** Resolves to the new sandbox's name. */
  restore(snapshot: string, newName: string | undefined): Promise<string>;
  list(): Promise<SnapshotRow[]>;
  remove(name: string): Promise<void>;
}

const side = (ctx: Context) =>
  sideOf<SnapshotSide>(
    ctx,
    async () => (await import("./snapshot-local.js")).local,
    async () => (await import("./snapshot-remote.js")).remote,
  );

/** `corral snapshot create SANDBOX NAME`: saves a running microVM; it runs on. */
export const create: Action = async (ctx, p) => {
  const { sandbox, name } = p.args as { sandbox: string; name: string };
  const x = await (await side(ctx)).create(sandbox, name);
  await print(`${x.name} ${formatSize(x.bytes)}\n`);
};

/** `corral snapshot restore NAME [--name NEW]`: a new sandbox that starts where the snapshot was. */
export const restore: Action = async (ctx, p) => {
  await print(`${await (await side(ctx)).restore(p.args["name"] as string, p.opts["name"] as string | undefined)}\n`);
};

export const ls: Action = async (ctx) => {
  const rows = (await (await side(ctx)).list()).map((x) => [x.name, x.source, x.template, formatSize(x.bytes), x.createdAt]);
  await print(`${table(["NAME", "SOURCE", "TEMPLATE", "SIZE", "CREATED"], rows)}\n`);
};

export const rm: Action = async (ctx, p) => {
  await (await side(ctx)).remove(p.args["name"] as string);
};
