import type { paths } from "./api-types.js";
import type { ConnectionConfig } from "./config.js";
import { OPERATION_IDS } from "./api-operations.js";
import { Channel, type RequestControl } from "./channel.js";
import { CorralSdkError, errorFromBody, errorFromResponse, SandboxError, TimeoutError } from "./errors.js";
import { eachNdjson } from "./ndjson.js";
import { send, type Outgoing, type Reply } from "./transport.js";

/** Why a request was cut short by us (its timeout), if it was. */
interface Cut {
  reason?: CorralSdkError;
}

// Request and response types come from the generated `paths`, so a call
// whose path, parameters or body disagree with api/openapi.yaml does not
// compile.

export type Method = "get" | "put" | "post" | "patch" | "delete";
export type ApiPath = keyof paths;
/** The methods the spec defines on a path. */
export type MethodOf<P extends ApiPath> = { [M in Method]: paths[P][M] extends undefined ? never : M }[Method];
export type Operation<P extends ApiPath, M extends Method> = NonNullable<paths[P][M]>;

/** A request body streamed as application/octet-stream. */
export type RawBody = string | Uint8Array | ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>;

type PathOpt<O> = O extends { parameters: { path: infer T } } ? { path: T } : { path?: undefined };
type QueryOpt<O> = O extends { parameters: { query: infer T } }
  ? { query: T }
  : O extends { parameters: { query?: infer T } }
    ? [T] extends [never]
      ? { query?: undefined }
      : { query?: T }
    : { query?: undefined };
type BodyOpt<O> = O extends { requestBody?: never }
  ? { json?: undefined; body?: undefined }
  : O extends { requestBody: { content: { "application/json": infer T } } }
    ? { json: T }
    : O extends { requestBody?: { content: { "application/json": infer T } } }
      ? { json?: T }
      : O extends { requestBody: { content: infer C } }
        ? { body: RawBody; contentType?: keyof C & string }
        : O extends { requestBody?: { content: infer C } }
          ? { body?: RawBody; contentType?: keyof C & string }
          : { json?: undefined; body?: undefined };

export type RequestOpts<O> = PathOpt<O> &
  QueryOpt<O> &
  BodyOpt<O> & {
    /** Overrides the connection's requestTimeoutMs for this call. */
    timeoutMs?: number;
  };

type Responses<O> = O extends { responses: infer R } ? R : never;
type OkResponse<O> = Responses<O>[Extract<keyof Responses<O>, 200 | 201 | 204>];
/** The JSON body of the operation's success response (undefined for 204). */
export type OkJson<O> = OkResponse<O> extends { content: { "application/json": infer T } } ? T : undefined;

type QueryValue = string | number | boolean | readonly string[] | undefined;
interface LooseOpts {
  path?: Record<string, string | number>;
  query?: Record<string, QueryValue>;
  json?: unknown;
  body?: RawBody;
  contentType?: string;
  timeoutMs?: number;
}

/** Query parameters as /v1/connect's query (absent ones left out). */
function definedOnly(q: NonNullable<LooseOpts["query"]>): Record<string, string | number | boolean | string[]> {
  const out: Record<string, string | number | boolean | string[]> = {};
  for (const [k, v] of Object.entries(q)) if (v !== undefined) out[k] = Array.isArray(v) ? [...(v as readonly string[])] : (v as string | number | boolean);
  return out;
}

/** Path parameters as /v1/connect's params (strings). */
function stringParams(p: LooseOpts["path"]): Record<string, string> | undefined {
  if (!p) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(p)) out[k] = String(v);
  return out;
}

/** The request target: the path with its `{name}` parameters filled, and the query. */
export function buildTarget(path: string, params: LooseOpts["path"], query: LooseOpts["query"]): string {
  const filled = !path.includes("{") ? path : path.replace(/\{([^}]+)\}/g, (_, name: string) => {
    const v = params?.[name];
    if (v === undefined) throw new TypeError(`missing path parameter ${name} for ${path}`);
    return encodeURIComponent(String(v));
  });
  if (query === undefined) return filled;
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const item of v as readonly string[]) qs.append(k, item);
    else qs.append(k, String(v));
  }
  const q = qs.toString();
  return `${filled}${q ? `?${q}` : ""}`;
}

/**
 * The transport layer: auth, timeouts, and non-2xx answers turned into SDK
 * errors. Calls with a JSON (or no) body and a JSON or text answer, and
 * foreground commands, go over the daemon's /v1/connect WebSocket when it
 * has one (Channel); byte streams (file reads and writes, stdin), template
 * builds, and everything for a daemon without it, over HTTP.
 */
export class Http {
  private readonly channel: Channel | undefined;

  constructor(readonly config: ConnectionConfig) {
    this.channel = Channel.for(config);
  }

  /** Calls an operation and returns its parsed JSON body (undefined for 204). */
  async json<P extends ApiPath, M extends MethodOf<P>>(method: M, path: P, opts: RequestOpts<Operation<P, M>>): Promise<OkJson<Operation<P, M>>> {
    const o = opts as LooseOpts;
    const answer = await this.overChannel(method, path, o);
    if (answer) return answer.body as OkJson<Operation<P, M>>;
    const { res, done, cut } = await this.send(method, path, o);
    try {
      const text = await res.text();
      if (!text) return undefined as OkJson<Operation<P, M>>;
      try {
        return JSON.parse(text) as OkJson<Operation<P, M>>;
      } catch (e) {
        throw new SandboxError("bad_response", `${method.toUpperCase()} ${path}: the response is not JSON: ${text.slice(0, 200)}`, res.status, { cause: e });
      }
    } catch (e) {
      throw this.translate(e, cut);
    } finally {
      done();
    }
  }

  /** Calls an operation whose answer is text (logs). */
  async text<P extends ApiPath, M extends MethodOf<P>>(method: M, path: P, opts: RequestOpts<Operation<P, M>>): Promise<string> {
    const answer = await this.overChannel(method, path, opts as LooseOpts);
    if (answer) return String(answer.body ?? "");
    const { res, done, cut } = await this.send(method, path, opts as LooseOpts);
    try {
      return await res.text();
    } catch (e) {
      throw this.translate(e, cut);
    } finally {
      done();
    }
  }

  /**
   * Calls an operation and returns the response as soon as it starts (2xx
   * only), its body unread: the request timeout stops applying here.
   */
  async stream<P extends ApiPath, M extends MethodOf<P>>(method: M, path: P, opts: RequestOpts<Operation<P, M>>): Promise<Reply> {
    const { res, done } = await this.send(method, path, opts as LooseOpts);
    done();
    return res;
  }

  /**
   * Runs a foreground command over /v1/connect, handing each of its events
   * to `fn` (awaited, in order). False when the daemon has no /v1/connect:
   * the caller then uses the HTTP stream. A command that cannot start
   * throws its error, as over HTTP.
   */
  async execEvents(sandboxId: string, body: unknown, fn: (e: unknown) => unknown, timeoutMs: number | undefined): Promise<boolean> {
    if (!this.channel) return false;
    const outcome = await this.channel.request("exec", { id: sandboxId }, body, { timeoutMs: timeoutMs ?? this.config.requestTimeoutMs, onEvent: fn });
    if (!outcome) return false;
    if ("status" in outcome) {
      if (outcome.status < 200 || outcome.status >= 300) throw errorFromBody(outcome.status, outcome.body);
      throw new SandboxError("bad_response", `exec: a reply where events were expected: ${JSON.stringify(outcome.body)?.slice(0, 200)}`, outcome.status);
    }
    return true;
  }

  /**
   * A streamed answer (connectProcess, watchDir) for as long as it lasts:
   * its NDJSON events (`onEvent`) or its bytes (`onBytes`), each awaited
   * before more is read, over /v1/connect when there is one (bytes as
   * binary frames) and HTTP otherwise. Resolves at the stream's end;
   * `control.cancel` ends it early (the request then rejects with the
   * reason given). No timeout: a quiet stream (a terminal nobody types
   * in) is not a dead one.
   */
  async follow<P extends ApiPath, M extends MethodOf<P>>(
    method: M,
    path: P,
    opts: RequestOpts<Operation<P, M>>,
    sink: { onEvent?: (e: unknown) => unknown; onBytes?: (b: Buffer) => unknown },
    control: RequestControl,
  ): Promise<void> {
    const o = opts as LooseOpts;
    const op = OPERATION_IDS[`${method} ${path}`];
    if (this.channel && op) {
      const outcome = await this.channel.request(op, stringParams(o.path), o.json, {
        timeoutMs: 0,
        ...(o.query ? { query: definedOnly(o.query) } : {}),
        ...(sink.onEvent ? { onEvent: sink.onEvent } : {}),
        ...(sink.onBytes ? { onBytes: sink.onBytes } : {}),
        control,
      });
      if (outcome) {
        if ("status" in outcome && (outcome.status < 200 || outcome.status >= 300)) throw errorFromBody(outcome.status, outcome.body);
        return;
      }
    }
    const res = await this.stream(method, path, { ...opts, timeoutMs: 0 } as RequestOpts<Operation<P, M>>);
    const body = res.stream();
    let cancelled: Error | undefined;
    control.cancel = (reason) => {
      cancelled = reason ?? new SandboxError("cancelled", `${method.toUpperCase()} ${path}: cancelled`);
      body.destroy();
    };
    try {
      if (sink.onEvent) await this.ndjson(res, sink.onEvent);
      else for await (const chunk of body) await sink.onBytes?.(chunk as Buffer);
    } catch (e) {
      throw cancelled ?? this.translate(e, undefined);
    }
    if (cancelled) throw cancelled;
  }

  /**
   * A request whose bytes are written as they come (a terminal's input),
   * over /v1/connect: `control.upload` takes them, in order, under the
   * channel's flow control. Undefined when the daemon has no /v1/connect
   * (the caller then sends each write as its own HTTP request).
   */
  uploading<P extends ApiPath, M extends MethodOf<P>>(method: M, path: P, opts: RequestOpts<Operation<P, M>>, control: RequestControl): Promise<void> | undefined {
    const o = opts as LooseOpts;
    const op = OPERATION_IDS[`${method} ${path}`];
    if (!this.channel || !op) return undefined;
    return this.channel
      .request(op, stringParams(o.path), undefined, { timeoutMs: 0, ...(o.query ? { query: definedOnly(o.query) } : {}), upload: true, control })
      .then((outcome) => {
        if (!outcome) throw new SandboxError("connection_failed", "the daemon has no /v1/connect");
        if ("status" in outcome && (outcome.status < 200 || outcome.status >= 300)) throw errorFromBody(outcome.status, outcome.body);
      });
  }

  /** Whether requests go over the daemon's /v1/connect (when it offers one). */
  get hasChannel(): boolean {
    return this.channel !== undefined;
  }

  /**
   * Calls `fn` with each JSON value of an NDJSON response as its line
   * completes (see eachNdjson). A connection cut mid-stream or a line that
   * is not JSON is a SandboxError; an error `fn` throws passes through.
   */
  async ndjson(res: Reply, fn: (value: unknown) => unknown): Promise<void> {
    try {
      await eachNdjson(res.stream(), fn);
    } catch (e) {
      if (e instanceof SyntaxError) throw new SandboxError("bad_response", e.message, res.status, { cause: e });
      throw this.translate(e, undefined);
    }
  }

  /**
   * The call over /v1/connect, when there is one and the call has no byte
   * body: its 2xx answer, or the error of any other; undefined when it must
   * go over HTTP.
   */
  private async overChannel(method: Method, path: string, o: LooseOpts): Promise<{ status: number; body?: unknown } | undefined> {
    const op = this.channel && o.body === undefined ? OPERATION_IDS[`${method} ${path}`] : undefined;
    if (!op) return undefined;
    const answer = await this.channel!.request(op, stringParams(o.path), o.json, {
      timeoutMs: this.timeoutOf(o),
      ...(o.query ? { query: definedOnly(o.query) } : {}),
    });
    if (!answer || !("status" in answer)) return undefined;
    if (answer.status < 200 || answer.status >= 300) throw errorFromBody(answer.status, answer.body);
    return answer;
  }

  private timeoutOf(o: LooseOpts): number {
    return o.timeoutMs ?? this.config.requestTimeoutMs;
  }

  private async send(method: Method, path: string, o: LooseOpts): Promise<{ res: Reply; done: () => void; cut: Cut }> {
    const target = buildTarget(path, o.path, o.query);
    const headers: Record<string, string> = { authorization: `Bearer ${this.config.apiKey}` };
    let body: Outgoing["body"];
    if (o.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(o.json);
    } else if (o.body !== undefined) {
      headers["content-type"] = o.contentType ?? "application/octet-stream";
      body = o.body;
    }
    const sending = send(this.config.apiUrl, target, { method: method.toUpperCase(), headers, body });
    const cut: Cut = {};
    const ms = this.timeoutOf(o);
    const timer =
      ms > 0
        ? setTimeout(() => {
            cut.reason = new TimeoutError("request_timeout", `${method.toUpperCase()} ${path}: no response within ${ms} ms`);
            sending.cancel(cut.reason);
          }, ms)
        : undefined;
    const done = () => clearTimeout(timer);
    let res: Reply;
    try {
      res = await sending.reply;
    } catch (e) {
      done();
      throw this.translate(e, cut);
    }
    if (!res.ok) {
      try {
        const text = await res.text().catch(() => "");
        throw errorFromResponse(res.status, res.statusText, text);
      } catch (e) {
        throw this.translate(e, cut);
      } finally {
        done();
      }
    }
    return { res, done, cut };
  }

  /** A cut by our timer becomes its TimeoutError; network failures a SandboxError. */
  private translate(e: unknown, cut: Cut | undefined): unknown {
    if (cut?.reason) return cut.reason;
    if (e instanceof CorralSdkError) return e;
    const code = (e as NodeJS.ErrnoException | undefined)?.code;
    if (e instanceof Error && typeof code === "string" && code !== "ABORT_ERR") {
      return new SandboxError("connection_failed", `request to corral at ${this.config.apiUrl} failed: ${code}`, 0, { cause: e });
    }
    return e;
  }
}

