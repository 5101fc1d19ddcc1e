import type net from "node:net";
import { CorralError, SandboxOperationError } from "../core/errors.js";
import { encodeFrame, FrameDecoder, type Frame, type Header } from "./protocol.js";

/** The agent went away (sandbox stopped, crashed, or the socket closed). */
export class AgentUnavailableError extends CorralError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("agent_unavailable", message, 502, options);
  }
}

/** What one stream (a request and its replies, by id) does with its frames. */
export interface StreamHandler {
  frame(f: Frame): void;
  fail(e: Error): void;
}

/** The error an agent's error reply (`ev: "error"`) or an unexpected one stands for. */
export function agentError(h: Header): Error {
  const code = typeof h["code"] === "string" ? h["code"] : "EIO";
  const msg = typeof h["message"] === "string" ? h["message"] : `agent replied ${JSON.stringify(h)}`;
  return new SandboxOperationError(code, msg);
}

/**
 * One connection to an agent: frames in and out, many streams at once by
 * id (docs/protocol.md), and its flow control. Reading stops while a
 * consumer holds the connection (hold, holdFor) or a file being read is
 * not taken (pauseReading); the agent then stops reading the commands'
 * pipes. Writing waits for the socket to drain (sendWithBackpressure).
 * AgentClient (client.ts) is its public face; exec.ts and file-ops.ts run
 * their streams on it.
 */
export class AgentConnection {
  private readonly decoder = new FrameDecoder();
  private readonly streams = new Map<number, StreamHandler>();
  private nextId = 1;
  private closedWith: Error | undefined;
  /** Consumers that asked the connection to stop reading (hold, holdFor). */
  private holds = 0;

  constructor(private readonly socket: net.Socket) {
    socket.setNoDelay?.(true);
    socket.on("data", (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = this.decoder.push(chunk);
      } catch (e) {
        this.shutdown(new AgentUnavailableError(`agent protocol error: ${(e as Error).message}`));
        return;
      }
      for (const f of frames) {
        const id = f.header["id"];
        if (typeof id !== "number") continue;
        this.streams.get(id)?.frame(f);
      }
    });
    socket.on("error", (e) => this.shutdown(new AgentUnavailableError(`agent connection failed: ${e.message}`, { cause: e })));
    socket.on("close", () => this.shutdown(new AgentUnavailableError("agent connection closed")));
    socket.resume(); // a stream handed over paused (after a vsock handshake) flows again
  }

  /** Stops reading until released (holds nest): the agent then pauses this connection's commands (docs/protocol.md). */
  hold(): () => void {
    this.holds++;
    this.socket.pause();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.holds--;
      this.resumeUnlessHeld();
    };
  }

  /** Pauses the connection until `pending` (a consumer's promise) settles. */
  holdFor(pending: unknown): void {
    if (typeof (pending as PromiseLike<unknown> | undefined)?.then !== "function") return;
    const release = this.hold();
    (pending as PromiseLike<unknown>).then(release, release);
  }

  /** Stops reading for a stream whose consumer is full, without a hold: resumeUnlessHeld undoes it. */
  pauseReading(): void {
    this.socket.pause();
  }

  /** Reads again, unless a consumer holds the connection. */
  resumeUnlessHeld(): void {
    if (this.holds === 0 && this.socket.isPaused()) this.socket.resume();
  }

  get closed(): boolean {
    return this.closedWith !== undefined;
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
    this.shutdown(new AgentUnavailableError("agent connection closed by the host"));
  }

  private shutdown(e: Error): void {
    if (this.closedWith) return;
    this.closedWith = e;
    for (const h of this.streams.values()) h.fail(e);
    this.streams.clear();
    this.socket.destroy();
  }

  /** Writes one frame; false when the socket's buffer is full (see sendWithBackpressure). */
  send(header: Header, payload?: Buffer): boolean {
    if (this.closedWith) throw this.closedWith;
    return this.socket.write(encodeFrame(header, payload));
  }

  /** Writes one frame and, if the socket's buffer is full, waits until it drains. */
  async sendWithBackpressure(header: Header, payload?: Buffer): Promise<void> {
    if (!this.send(header, payload)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = () => {
          this.socket.off("close", onClose);
          resolve();
        };
        const onClose = () => {
          this.socket.off("drain", onDrain);
          reject(this.closedWith ?? new AgentUnavailableError("agent connection closed"));
        };
        this.socket.once("drain", onDrain);
        this.socket.once("close", onClose);
      });
    }
  }

  /** A new stream: its id, whose frames go to `handler` until `end(id)`. */
  open(handler: StreamHandler): number {
    if (this.closedWith) throw this.closedWith;
    const id = this.nextId;
    this.nextId = this.nextId >= 0x7fffffff ? 1 : this.nextId + 1;
    this.streams.set(id, handler);
    return id;
  }

  /** The stream has had its last frame: its id is free again. */
  end(id: number): void {
    this.streams.delete(id);
  }

  /** One request, one reply (`ev` = `expect`), or an error. */
  request(header: Record<string, unknown>, expect: string): Promise<Header> {
    return new Promise((resolve, reject) => {
      const id = this.open({
        frame: (f) => {
          this.end(id);
          if (f.header["ev"] === expect) resolve(f.header);
          else reject(agentError(f.header));
        },
        fail: reject,
      });
      this.send({ ...header, id });
    });
  }
}
