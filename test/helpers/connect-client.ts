// A bare /v1/connect client for tests (the `ws` package, no SDK): sends
// requests and binary frames, collects what comes back by request id, and
// gives credit for what it has received unless told not to.
import WebSocket from "ws";
import { binaryFrame, parseBinaryFrame, WINDOW } from "../../src/server/connect-flow.js";

export interface Reply {
  id: number;
  status?: number;
  body?: { error?: { code: string; message: string; issues?: { path: string; message: string }[] } } & Record<string, unknown>;
  event?: { type: string; pid?: number; data?: string; exitCode?: number | null; signal?: number | null; [k: string]: unknown };
  credit?: number;
  bytes?: number;
}

export class ConnectClient {
  readonly messages: Reply[] = [];
  /** Binary payloads by request id; an empty one (the end) is kept too. */
  readonly frames = new Map<number, Buffer[]>();
  /** Bytes received per request (event texts and binary payloads), and not yet credited. */
  private readonly owed = new Map<number, number>();
  /** Bytes received per request, in all. */
  readonly total = new Map<number, number>();
  private waiters: (() => void)[] = [];
  closed: { code: number } | undefined;
  /** Credit is given back as things arrive (a reader that keeps up); false: only by credit(). */
  autoCredit = true;

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (d: Buffer, isBinary) => {
      if (isBinary) {
        const f = parseBinaryFrame(d)!;
        const list = this.frames.get(f.id) ?? [];
        list.push(Buffer.from(f.payload));
        this.frames.set(f.id, list);
        this.received(f.id, f.payload.length);
      } else {
        const m = JSON.parse(String(d)) as Reply;
        this.messages.push(m);
        if (m.event) this.received(m.id, d.length);
      }
      for (const w of this.waiters.splice(0)) w();
    });
    ws.on("close", (code) => {
      this.closed = { code };
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static async open(url: string, key: string): Promise<ConnectClient> {
    const ws = new WebSocket(url.replace(/^http/, "ws") + "/v1/connect", { headers: { authorization: `Bearer ${key}` } });
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    return new ConnectClient(ws);
  }

  private received(id: number, n: number): void {
    this.total.set(id, (this.total.get(id) ?? 0) + n);
    const owed = (this.owed.get(id) ?? 0) + n;
    this.owed.set(id, owed);
    if (this.autoCredit && owed >= WINDOW / 4) this.credit(id);
  }

  /** Credits everything received for `id` so far. */
  credit(id: number): void {
    const owed = this.owed.get(id) ?? 0;
    if (owed > 0) this.send({ credit: id, bytes: owed });
    this.owed.set(id, 0);
  }

  send(m: unknown): void {
    this.ws.send(typeof m === "string" ? m : JSON.stringify(m));
  }

  /** Sends `data` as request `id`'s bytes, in frames of `chunk`, honouring the daemon's credit; then the empty end frame. */
  async upload(id: number, data: Buffer, chunk = 64 * 1024): Promise<void> {
    let granted = WINDOW;
    for (let o = 0; o < data.length; o += chunk) {
      const piece = data.subarray(o, o + chunk);
      while (o + piece.length > granted) {
        const credits = this.messages.filter((m) => m.credit === id).reduce((a, m) => a + (m.bytes ?? 0), 0);
        if (WINDOW + credits > granted) granted = WINDOW + credits;
        else if (this.messages.some((m) => m.id === id && m.status !== undefined)) return; // answered (refused) halfway
        else await this.next();
      }
      this.ws.send(binaryFrame(id, piece));
    }
    this.ws.send(binaryFrame(id));
  }

  private next(): Promise<void> {
    return new Promise<void>((r) => {
      this.waiters.push(r);
      setTimeout(r, 100);
    });
  }

  /** Waits for a message matching `pred` (or the close, with `closed`). */
  async until(pred: (m: Reply) => boolean, timeoutMs = 15_000): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.messages.find(pred);
      if (m) return m;
      if (this.closed) throw new Error(`closed (${this.closed.code}) before the message came`);
      if (Date.now() > deadline) throw new Error(`no such message within ${timeoutMs} ms: ${JSON.stringify(this.messages.slice(-5))}`);
      await this.next();
    }
  }

  reply(id: number): Promise<Reply> {
    return this.until((m) => m.id === id && m.status !== undefined);
  }

  /** The last event of a stream: exit, done or error. */
  last(id: number, timeoutMs?: number): Promise<Reply> {
    return this.until((m) => m.id === id && ["exit", "done", "error"].includes(m.event?.type ?? ""), timeoutMs);
  }

  events(id: number): NonNullable<Reply["event"]>[] {
    return this.messages.filter((m) => m.id === id && m.event).map((m) => m.event!);
  }

  /** A stream's output of one kind, decoded. */
  output(id: number, type: "stdout" | "stderr"): string {
    return Buffer.concat(this.events(id).filter((e) => e.type === type).map((e) => Buffer.from(e.data ?? "", "base64"))).toString();
  }

  /** A byte answer: its bytes once the empty frame came, or the error reply that ended it. */
  async bytes(id: number, timeoutMs = 15_000): Promise<Buffer | Reply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const frames = this.frames.get(id) ?? [];
      if (frames.at(-1)?.length === 0) return Buffer.concat(frames);
      const r = this.messages.find((m) => m.id === id && m.status !== undefined);
      if (r) return r;
      if (this.closed || Date.now() > deadline) throw new Error(`no end of request ${id}'s bytes`);
      await this.next();
    }
  }
}
