import { InvalidArgumentError } from "../../core/errors.js";
import type { SandboxInfo } from "../../runtime/sandboxes.js";
import { e2bTemplateId, stateOf } from "./sandbox-json.js";

/** Sandboxes one page of GET /v2/sandboxes holds at most, and unless told (E2B's paginationLimit). */
export const MAX_PAGE = 100;

export interface ListQuery {
  readonly metadata: ReadonlyMap<string, string>;
  readonly states: ReadonlySet<"running" | "paused"> | undefined;
  readonly startedAfter: number | undefined;
  readonly template: string | undefined;
  readonly order: "asc" | "desc";
  readonly limit: number;
  /** Where the previous page ended: its last sandbox's start and id. */
  readonly after: { readonly startedAt: string; readonly id: string } | undefined;
}

type Raw = Record<string, string | string[] | undefined>;

const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[v.length - 1] : v);

/**
 * GET /v2/sandboxes's query as the SDK sends it: `metadata` one string of
 * "key=value&..." whose keys and values are URL-encoded again inside it
 * (so "a=b" in a value stays one value); `state` repeated or
 * comma-separated (the SDK joins with commas).
 */
export function parseListQuery(q: Raw): ListQuery {
  const metadata = new Map<string, string>();
  const m = one(q["metadata"]);
  if (m) {
    for (const [k, v] of new URLSearchParams(m)) metadata.set(decode(k), decode(v));
  }
  let states: Set<"running" | "paused"> | undefined;
  const rawStates = [q["state"]].flat().filter((s): s is string => typeof s === "string");
  if (rawStates.length) {
    states = new Set();
    for (const s of rawStates.flatMap((x) => x.split(","))) {
      if (s !== "running" && s !== "paused") throw new InvalidArgumentError(`state must be running or paused, got ${JSON.stringify(s)}`);
      states.add(s);
    }
  }
  const sa = one(q["startedAfter"]);
  const startedAfter = sa === undefined ? undefined : Date.parse(sa);
  if (startedAfter !== undefined && Number.isNaN(startedAfter)) throw new InvalidArgumentError(`startedAfter must be a date-time, got ${JSON.stringify(sa)}`);
  const order = one(q["order"]) ?? "desc";
  if (order !== "asc" && order !== "desc") throw new InvalidArgumentError(`order must be asc or desc, got ${JSON.stringify(order)}`);
  const l = one(q["limit"]);
  const limit = l === undefined ? MAX_PAGE : Number(l);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) throw new InvalidArgumentError(`limit must be a whole number from 1 to ${MAX_PAGE}, got ${JSON.stringify(l)}`);
  const token = one(q["nextToken"]);
  return { metadata, states, startedAfter, template: one(q["template"]) || undefined, order, limit, after: token ? parseToken(token) : undefined };
}

/** One page of `all` (every sandbox of the tenant) and the token of the next, if there is more. */
export function page(all: readonly SandboxInfo[], q: ListQuery): { items: SandboxInfo[]; next: string | undefined } {
  const dir = q.order === "asc" ? 1 : -1;
  const cmp = (a: { createdAt: string; id: string }, b: { startedAt: string; id: string }) =>
    dir * (a.createdAt < b.startedAt ? -1 : a.createdAt > b.startedAt ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  const wanted = all
    .filter((s) => [...q.metadata].every(([k, v]) => s.spec.labels[k] === v))
    .filter((s) => !q.states || q.states.has(stateOf(s)))
    .filter((s) => q.startedAfter === undefined || Date.parse(s.createdAt) >= q.startedAfter)
    .filter((s) => !q.template || q.template === e2bTemplateId(s.spec) || q.template === s.spec.template)
    .filter((s) => !q.after || cmp(s, q.after) > 0)
    .sort((a, b) => cmp(a, { startedAt: b.createdAt, id: b.id }));
  const items = wanted.slice(0, q.limit);
  const last = items[items.length - 1];
  return { items, next: wanted.length > q.limit && last ? Buffer.from(JSON.stringify([last.createdAt, last.id])).toString("base64url") : undefined };
}

function parseToken(t: string): ListQuery["after"] {
  try {
    const v = JSON.parse(Buffer.from(t, "base64url").toString()) as unknown;
    if (Array.isArray(v) && typeof v[0] === "string" && typeof v[1] === "string") return { startedAt: v[0], id: v[1] };
  } catch {
    // fall through
  }
  throw new InvalidArgumentError("nextToken is not one this API gave");
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new InvalidArgumentError(`metadata is not URL-encoded: ${JSON.stringify(s)}`);
  }
}
