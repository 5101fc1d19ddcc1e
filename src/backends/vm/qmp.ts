import net from "node:net";
import { BackendError } from "../../core/errors.js";

/**
 * A minimal client of QEMU's monitor protocol (QMP) on a unix socket:
 * greeting, `qmp_capabilities`, then one command at a time, answers
 * matched in order and events skipped.
 */
export class Qmp {
  private buf = "";
  private waiting: { resolve(v: unknown): void; reject(e: Error): void }[] = [];
  private closed: Error | undefined;

  private constructor(private readonly sock: net.Socket) {
    sock.setEncoding("utf8");
    sock.on("data", (d: string) => this.onData(d));
    const fail = (e: Error) => {
      this.closed ??= e;
      for (const w of this.waiting.splice(0)) w.reject(this.closed);
    };
    sock.on("error", (e) => fail(new BackendError(`QMP: ${e.message}`)));
    sock.on("close", () => fail(new BackendError("QMP connection closed")));
  }

  static async connect(path: string, timeoutMs = 5000): Promise<Qmp> {
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(path);
      const t = setTimeout(() => {
        s.destroy();
        reject(new BackendError(`QMP: no answer on ${path} within ${timeoutMs} ms`));
      }, timeoutMs);
      s.once("connect", () => {
        clearTimeout(t);
        resolve(s);
      });
      s.once("error", (e) => {
        clearTimeout(t);
        reject(new BackendError(`QMP: cannot connect to ${path}: ${e.message}`));
      });
    });
    const q = new Qmp(sock);
    await q.next(); // the greeting
    await q.execute("qmp_capabilities");
    return q;
  }

  private onData(d: string): void {
    this.buf += d;
    let nl: number;
    while ((nl = this.buf.indexOf("\n")) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (!line) continue;
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      if ("event" in msg) continue;
      const w = this.waiting.shift();
      if (!w) continue;
      if ("error" in msg) {
        const e = msg["error"] as { class?: string; desc?: string };
        w.reject(new BackendError(`QMP: ${e.class ?? "error"}: ${e.desc ?? line}`));
      } else w.resolve(msg["return"] ?? msg["QMP"]);
    }
  }

  private next(): Promise<unknown> {
    if (this.closed) return Promise.reject(this.closed);
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    const p = this.next();
    this.sock.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`);
    return p;
  }

  close(): void {
    this.sock.destroy();
  }
}
