import type { AgentClient, ExecCallbacks, ExecHandle, ExecRequest } from "../agent/client.js";
import type { SandboxHandle } from "../backends/backend.js";
import { SandboxNotRunningError } from "../core/errors.js";
import { recordEvent, type Db } from "./db.js";
import type { ExecOutcome, SandboxRecord } from "./records.js";

/** A started command: its handle (pid, stdin, signals), its outcome, and `end` for when the caller is done with it. */
export interface StartedExec {
  readonly record: SandboxRecord;
  readonly handle: ExecHandle;
  readonly outcome: Promise<ExecOutcome>;
  readonly end: () => void;
}

/**
 * What this process keeps per sandbox to run commands in it: its agent
 * connection (longLived), its OOM count as last read, and a rename in
 * progress. Nothing here is in the database: another process keeps its own.
 */
export class Connections {
  /** Agent connections by sandbox id, when longLived (sharedAgent). */
  private readonly agents = new Map<string, Promise<AgentClient>>();
  /**
   * Claimed sandboxes taking their own hostname (a pooled one was started
   * with the pool's): their first command waits for it, the claim does not.
   */
  private readonly renaming = new Map<string, Promise<void>>();
  /**
   * OOM kills in each sandbox's cgroup as last read (0 for one this process
   * made: a new cgroup), so a command's start needs no read: only a
   * command that ends by SIGKILL has the count read again (startExec). An
   * OOM kill of another process's command since the last read is taken for
   * the next SIGKILLed command's own.
   */
  private readonly oomSeen = new Map<string, number>();

  constructor(
    private readonly db: Db,
    private readonly handle: (r: SandboxRecord) => SandboxHandle,
    private readonly longLived: boolean,
  ) {}

  /**
   * A sandbox this process has just started: none of its processes has been
   * OOM-killed yet (`fresh`; a restored VM may carry kills from before its
   * snapshot, read at its first command instead), and with longLived its
   * agent is connected ahead of the first command (in the background: the
   * caller's answer does not wait), a pooled sandbox's while it waits.
   */
  started(r: SandboxRecord, fresh: boolean): void {
    if (fresh) this.oomSeen.set(r.id, 0);
    else this.oomSeen.delete(r.id);
    if (this.longLived) void this.sharedAgent(r).catch(() => {});
  }

  /**
   * The connection this process keeps to a running sandbox's agent
   * (longLived), made again when the last one has closed. Commands share
   * it (the protocol multiplexes streams); it is closed when the sandbox
   * stops or goes, and by close().
   */
  private async sharedAgent(r: SandboxRecord): Promise<AgentClient> {
    const cached = this.agents.get(r.id);
    if (cached) {
      const c = await cached.catch(() => undefined);
      if (c && !c.closed) return c;
      if (this.agents.get(r.id) === cached) this.agents.delete(r.id);
    }
    const made = this.connect(r);
    this.agents.set(r.id, made);
    made.catch(() => {
      if (this.agents.get(r.id) === made) this.agents.delete(r.id);
    });
    return made;
  }

  /**
   * A new connection to a sandbox's agent, refused at once when its host
   * side is dead (its row not yet settled by the daemon's watch): the
   * connect alone would retry a socket nobody listens on for 5 s and
   * answer 504 (issue 18). The status is asked again every 100 ms while
   * the connect retries (a container's is cached for 250 ms).
   */
  async connect(r: SandboxRecord): Promise<AgentClient> {
    const h = this.handle(r);
    if ((await h.status({ fresh: true })) !== "running") throw new SandboxNotRunningError(r.name, "dead");
    const made = h.agent();
    let done = false;
    const died = (async () => {
      while (!done) {
        await new Promise((res) => setTimeout(res, 100));
        if (!done && (await h.status().catch(() => "running")) !== "running") return true;
      }
      return false;
    })();
    try {
      const first = await Promise.race([made, died]);
      if (first === true) {
        made.then((c) => c.close(), () => {});
        throw new SandboxNotRunningError(r.name, "dead");
      }
      return first as AgentClient;
    } finally {
      done = true;
    }
  }

  /**
   * The error to report for a command whose agent connection failed
   * (agent_unavailable): that the sandbox is not running when its host
   * side has died (a kept connection notices the death a moment after the
   * watch could), else `e` itself. The status is asked for up to 1 s: a
   * container's is cached for 250 ms, and a VM's shim outlives its QEMU
   * by a moment.
   */
  async deadOr(r: SandboxRecord, e: unknown): Promise<unknown> {
    if ((e as { code?: string }).code !== "agent_unavailable") return e;
    const h = this.handle(r);
    for (let i = 0; i < 10; i++) {
      if ((await h.status().catch(() => "running")) !== "running") return new SandboxNotRunningError(r.name, "dead");
      await new Promise((res) => setTimeout(res, 100));
    }
    return e;
  }

  /** Forgets what this process keeps for a sandbox that stops or goes: its agent connection (closed), its OOM count. */
  drop(id: string): void {
    const c = this.agents.get(id);
    this.agents.delete(id);
    this.oomSeen.delete(id);
    c?.then((x) => x.close(), () => {});
  }

  /** Closes every connection kept (the process is done with the state dir). */
  close(): void {
    for (const id of [...this.agents.keys()]) this.drop(id);
  }

  /**
   * Renames a claimed sandbox that was given a name in the background (its
   * first command waits for it). The sandbox works either way; a failure
   * is recorded as an event.
   */
  rename(r: SandboxRecord): void {
    const done = this.handle(r)
      .rename(r.name)
      .catch((e: unknown) => {
        try {
          recordEvent(this.db, { tenant: r.tenant, sandbox: r.id, type: "rename_failed", detail: { name: r.name, error: (e as Error).message } });
        } catch {
          // The database is closing: nothing to record it in.
        }
      })
      .finally(() => {
        if (this.renaming.get(r.id) === done) this.renaming.delete(r.id);
      });
    this.renaming.set(r.id, done);
  }

  /**
   * Starts a command in running sandbox `record` and hands back its handle
   * (pid, stdin, signals) and its outcome, which tells an OOM kill from any
   * other SIGKILL by the cgroup's OOM counter. The caller calls `end` when
   * it is done with the command: before the command has ended, that kills
   * it unless it is keepAlive (as a lost connection would). The sandbox's
   * env and workdir apply unless the request overrides them.
   */
  async startExec(record: SandboxRecord, req: ExecRequest, cb: ExecCallbacks = {}): Promise<StartedExec> {
    const renaming = this.renaming.get(record.id);
    if (renaming) await renaming;
    const h = this.handle(record);
    const seen = this.oomSeen.get(record.id);
    const before = seen ?? (await h.oomKills());
    if (seen === undefined) this.oomSeen.set(record.id, before);
    const client = this.longLived ? await this.sharedAgent(record) : await this.connect(record);
    let handle: ExecHandle;
    try {
      handle = client.exec({ ...req, env: { ...record.spec.env, ...req.env }, cwd: req.cwd ?? record.spec.workdir }, cb);
    } catch (e) {
      if (!this.longLived) client.close();
      throw e;
    }
    let ended = false;
    const outcome = handle.result.then(
      async (r) => {
        if (r.signal !== 9) return { ...r, oomKilled: false };
        const now = await h.oomKills();
        this.oomSeen.set(record.id, Math.max(now, this.oomSeen.get(record.id) ?? 0));
        return { ...r, oomKilled: now > before };
      },
      async (e: unknown) => {
        throw await this.deadOr(record, e);
      },
    );
    outcome.catch(() => {}).finally(() => (ended = true)); // a command that never started is reported through handle.pid
    const end = this.longLived
      ? () => {
          if (!ended && !req.keepAlive) void handle.kill(9).catch(() => {});
        }
      : () => client.close();
    return { record, handle, outcome, end };
  }
}
