// Threat: path traversal through a name (issue 18: the template name of
// POST /v1/templates/{name}/build was joined to `templates/<name>.json`
// and read as root, an existence oracle for any `*.json` on the host and
// a way to have a file a sandbox planted served back as a template).
// Every route of the operation table gets traversal payloads in each of
// its path parameters, over HTTP and /v1/connect: each is refused with a
// 400 before any handler runs (core/names.ts). The library refuses them
// too, so the CLI on a state dir is covered.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { freshState, type TestState } from "../helpers/state.js";
import { request, testDaemon } from "../helpers/daemon.js";
import { ConnectClient } from "../helpers/connect-client.js";
import { OpenApi } from "../../src/server/openapi.js";
import { pathParameterKind, type NameKind } from "../../src/core/names.js";
import type { Daemon } from "../../src/server/daemon.js";

describe("path traversal through names", () => {
  let t: TestState;
  let d: Daemon;
  let key: string;
  let sandboxId: string;
  const canary = `/tmp/corral-trav-${randomBytes(4).toString("hex")}`;
  const payloads = [
    "..",
    "../../../../../..",
    `../../../../../..${canary}`,
    `busybox/../../../../../..${canary}`,
    "a/../../b",
    "..\\..\\windows",
    "x\0y",
    ".json",
    ".hidden",
    "%2e%2e%2f%2e%2e",
    "a".repeat(300),
    "a".repeat(2000),
    "BUSYBOX",
    "\u2024\u2024", // one-dot leaders, a '..' lookalike
  ];
  before(async () => {
    t = await freshState("traversal");
    d = await testDaemon(t, { adminTenants: ["adm"] });
    key = t.s.tenants.createKey("adm").key;
    sandboxId = (await t.s.create({ template: "busybox", lifetime: { mode: "persistent" } }, { tenant: "adm" })).id;
    // A template record planted where a traversal would find it.
    const record = JSON.stringify({ name: "planted", layers: [], source: "planted", createdAt: new Date().toISOString() });
    fs.writeFileSync(`${canary}.json`, record);
  });
  after(async () => {
    fs.rmSync(`${canary}.json`, { force: true });
    await d.close();
    await t.close();
  });

  const valid: Record<NameKind, () => string> = {
    sandbox: () => sandboxId,
    template: () => "busybox",
    snapshot: () => "snap",
    tenant: () => "adm",
    pool: () => "0123456789abcdef",
    key: () => "0123456789ab",
    sshKey: () => "0123456789ab",
  };

  /** Every operation with a string path parameter, with valid values for all its parameters. */
  const routes = () =>
    new OpenApi().operations().flatMap((op) => {
      const ps = op.parameters.filter((p) => p.in === "path");
      const named = ps.filter((p) => (p.schema as { type?: string }).type === "string");
      if (!named.length) return [];
      const base: Record<string, string> = {};
      for (const p of ps) base[p.name] = (p.schema as { type?: string }).type === "string" ? valid[pathParameterKind(op.path, p.name)!]() : "1";
      return named.map((p) => ({ op, param: p.name, base }));
    });

  it("refuses every payload in every path parameter over HTTP with a 400", async () => {
    const rs = routes();
    assert.ok(rs.length >= 20, `${rs.length} routes`);
    for (const { op, param, base } of rs) {
      for (const bad of payloads) {
        const values = { ...base, [param]: bad };
        const url = op.path.replace(/\{(\w+)\}/g, (_m, n: string) => encodeURIComponent(values[n] ?? ""));
        const query = op.parameters.some((p) => p.in === "query" && p.name === "path" && p.required) ? "?path=/tmp/x" : "";
        const r = await request(d.url, op.method.toUpperCase(), url + query, { key });
        const what = `${op.method.toUpperCase()} ${url} (${op.id} ${param}=${JSON.stringify(bad)}): ${r.status} ${r.text.slice(0, 200)}`;
        // A '..' segment the router itself resolves finds no route (404 route_not_found); anything else is the name check's 400.
        // One longer than any URL parameter the router takes: 414 uri_too_long.
        if (r.status === 404) assert.equal(r.json<{ error: { code: string } }>().error.code, "route_not_found", what);
        else if (r.status === 414) assert.equal(r.json<{ error: { code: string } }>().error.code, "uri_too_long", what);
        else assert.equal(r.status, 400, what);
        if (r.status === 400) assert.equal(r.json<{ error: { code: string } }>().error.code, "invalid_argument", what);
      }
    }
  });

  it("refuses them over /v1/connect with a 400", async () => {
    const c = await ConnectClient.open(d.url, key);
    try {
      let id = 0;
      for (const { op, param, base } of routes()) {
        for (const bad of payloads) {
          const query = op.parameters.some((p) => p.in === "query" && p.name === "path" && p.required) ? { path: "/tmp/x" } : {};
          c.send({ id: ++id, op: op.id, params: { ...base, [param]: bad }, query });
          const r = await c.reply(id);
          assert.equal(r.status, 400, `${op.id} ${param}=${JSON.stringify(bad)}: ${JSON.stringify(r.body)}`);
          assert.equal(r.body?.error?.code, "invalid_argument");
        }
      }
    } finally {
      c.ws.close();
    }
  });

  it("refuses them in the library: no template read outside the store", async () => {
    // A file in a sandbox's directory of the state dir (a persistent one's
    // upper dir is inside its ext4 image now, not on the host's path), and
    // one anywhere on the host.
    const planted = path.join(t.stateDir, "sandboxes", sandboxId, "evil.json");
    fs.writeFileSync(planted, fs.readFileSync(`${canary}.json`));
    for (const name of [`../../../../../..${canary}`, `../../sandboxes/${sandboxId}/evil`]) {
      await assert.rejects(t.s.store.ensureTemplate(name), { code: "invalid_argument" }, name);
      await assert.rejects(t.s.store.removeTemplate(name), { code: "invalid_argument" }, name);
    }
    assert.ok(fs.existsSync(`${canary}.json`) && fs.existsSync(planted), "nothing removed");
  });
});
