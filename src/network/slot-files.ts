import fsp from "node:fs/promises";
import path from "node:path";
import { withPidLock } from "../host/pid-lock.js";
import type { NetworkPolicy } from "../core/network-spec.js";

/**
 * One file per network slot in use, `<state>/net/slots/<slot>.json`,
 * created exclusively (O_EXCL), so two processes on one state dir never
 * take the same address. The file says whose the slot is and with what
 * policy: the resolver reads them to answer each sandbox, reconcile to find
 * slots whose sandbox is gone.
 */
export interface SlotRecord {
  readonly slot: number;
  readonly address: string;
  readonly mac: string;
  /** "container": a namespace and veth pair; "vm": a tap. */
  readonly kind: "container" | "vm";
  /** The host side of its link (veth end or tap): its port on the bridge. */
  readonly port: string;
  /** A namespace of an earlier layout (ip netns), deleted with the slot. */
  readonly netns?: string;
  /** The sandbox it belongs to. */
  readonly id: string;
  readonly tenant: string;
  /** The sandbox's name: what peers on its named networks resolve. */
  readonly name: string;
  readonly policy: Pick<NetworkPolicy, "allow" | "deny" | "networks">;
  /** A slot made ahead of need by a long-lived process (its pid and start time), no sandbox's yet. */
  readonly spare?: { readonly pid: number; readonly startTime: number };
}

export class SlotFiles {
  readonly dir: string;
  private readonly lockFile: string;
  constructor(netDir: string) {
    this.dir = path.join(netDir, "slots");
    this.lockFile = path.join(netDir, "lock");
  }

  file(slot: number): string {
    return path.join(this.dir, `${slot}.json`);
  }

  /** Every slot record; a half-written one (a creator that died mid-write) is skipped. */
  async all(): Promise<SlotRecord[]> {
    const names = await fsp.readdir(this.dir).catch(() => [] as string[]);
    const out: SlotRecord[] = [];
    for (const n of names) {
      if (!/^\d+\.json$/.test(n)) continue;
      const text = await fsp.readFile(path.join(this.dir, n), "utf8").catch(() => "");
      try {
        out.push(JSON.parse(text) as SlotRecord);
      } catch {
        // Being written (or torn by a crash: reconcile frees its number).
      }
    }
    return out;
  }

  /** Slot numbers taken (a file exists, whatever it holds). */
  async taken(): Promise<Set<number>> {
    const names = await fsp.readdir(this.dir).catch(() => [] as string[]);
    return new Set(names.filter((n) => /^\d+\.json$/.test(n)).map((n) => Number(n.slice(0, -5))));
  }

  /** Takes the lowest free slot below `limit` for `make(slot)`'s record. */
  async reserve(limit: number, make: (slot: number) => SlotRecord): Promise<SlotRecord> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    for (;;) {
      const taken = await this.taken();
      let slot = 0;
      while (taken.has(slot)) slot++;
      if (slot >= limit) throw new Error(`every address of the sandbox range is in use (${limit})`);
      const rec = make(slot);
      try {
        await fsp.writeFile(this.file(slot), JSON.stringify(rec), { flag: "wx", mode: 0o600 });
        return rec;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
    }
  }

  /** Replaces a slot's record whole (rename into place: readers see the old or the new). */
  async write(rec: SlotRecord): Promise<void> {
    const tmp = `${this.file(rec.slot)}.${process.pid}.tmp`;
    await fsp.writeFile(tmp, JSON.stringify(rec), { mode: 0o600 });
    await fsp.rename(tmp, this.file(rec.slot));
  }

  async remove(slot: number): Promise<void> {
    await fsp.rm(this.file(slot), { force: true });
  }

  /**
   * Runs `fn` holding the state dir's network lock (setting the bridge up
   * or down, named-network peers): a pid lock (host/pid-lock.ts), taken
   * over from a dead holder. Polls every 2 ms: held for a few ms at a time.
   */
  async locked<T>(fn: () => Promise<T>): Promise<T> {
    await fsp.mkdir(path.dirname(this.lockFile), { recursive: true, mode: 0o700 });
    return withPidLock(this.lockFile, fn, { pollMs: 2, timeoutMs: 60_000 });
  }
}
