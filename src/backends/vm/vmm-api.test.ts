// The HTTP-over-unix-socket client both VMM drivers use, against a real
// node HTTP server on a unix socket answering the way the two APIs do
// (204 on success; Firecracker's JSON fault_message, Cloud Hypervisor's
// plain text on error).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { apiCall, apiRequest } from "./vmm-api.js";
import { findOnPath, kvmProblem, removeStale, waitForApi } from "./vmm-host.js";
import { BackendError } from "../../core/errors.js";

let dir: string;
let sock: string;
let server: http.Server;
const seen: { method: string; url: string; type: string | undefined; body: string }[] = [];

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "corral-vmmapi-"));
  sock = path.join(dir, "api.sock");
  server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      seen.push({ method: req.method!, url: req.url!, type: req.headers["content-type"], body });
      if (req.url === "/fc-fault") {
        res.writeHead(400, { "Content-Type": "application/json" }).end(JSON.stringify({ fault_message: "Invalid kernel path" }));
      } else if (req.url === "/ch-fault") {
        res.writeHead(500).end("Error creating VM: VmCreate(InvalidPayload)\n");
      } else if (req.url === "/info") {
        res.writeHead(200, { "Content-Type": "application/json" }).end('{"state":"Running"}');
      } else {
        res.writeHead(204).end();
      }
    });
  });
  await new Promise<void>((r) => server.listen(sock, r));
});

after(() => {
  server.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test("PUT with a JSON body arrives as JSON; GET has no body", async () => {
  const r = await apiCall("t", sock, { method: "PUT", path: "/api/v1/vm.create", body: { memory: { size: 1 } } });
  assert.equal(r.status, 204);
  assert.deepEqual(seen.at(-1), { method: "PUT", url: "/api/v1/vm.create", type: "application/json", body: '{"memory":{"size":1}}' });
  const g = await apiCall("t", sock, { method: "GET", path: "/info" });
  assert.equal(g.body, '{"state":"Running"}');
  assert.equal(seen.at(-1)!.body, "");
});

test("errors carry the VMM's own words", async () => {
  await assert.rejects(
    apiCall("firecracker", sock, { method: "PUT", path: "/fc-fault", body: {} }),
    (e: unknown) => e instanceof BackendError && e.message === "firecracker: PUT /fc-fault answered 400: Invalid kernel path",
  );
  await assert.rejects(apiCall("cloud-hypervisor vm.create", sock, { method: "PUT", path: "/ch-fault" }), /answered 500: Error creating VM: VmCreate\(InvalidPayload\)$/);
  assert.equal((await apiRequest(sock, { method: "PUT", path: "/fc-fault" })).status, 400, "apiRequest itself does not throw on a status");
});

test("a socket nobody listens on is a BackendError naming it", async () => {
  const missing = path.join(dir, "nobody.sock");
  await assert.rejects(apiCall("t", missing, { method: "GET", path: "/" }), (e: unknown) => e instanceof BackendError && e.message.includes(missing));
});

test("waitForApi gives up at once on a dead process, with its log", async () => {
  const log = path.join(dir, "vmm.log");
  fs.writeFileSync(log, "line 1\nError: no /dev/kvm\n");
  await assert.rejects(waitForApi(0x7ffffff0, sock, { method: "GET", path: "/" }, log), /exited while starting:\nline 1\nError: no \/dev\/kvm/);
  await waitForApi(process.pid, sock, { method: "GET", path: "/info" }, log); // a live one that answers
});

test("findOnPath, kvmProblem, removeStale", async () => {
  const bin = path.join(dir, "bin");
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(bin, "fake-vmm"), "#!/bin/sh\n", { mode: 0o755 });
  fs.writeFileSync(path.join(bin, "not-exec"), "", { mode: 0o644 });
  assert.equal(findOnPath("fake-vmm", `/nonexistent:${bin}`), path.join(bin, "fake-vmm"));
  assert.equal(findOnPath("not-exec", bin), undefined);
  assert.equal(findOnPath("fake-vmm", ""), undefined);
  assert.match(kvmProblem(path.join(dir, "no-kvm")) ?? "", /no-kvm is not usable: ENOENT/);
  const file = path.join(dir, "keep.txt");
  fs.writeFileSync(file, "x");
  removeStale(file, path.join(dir, "absent.sock"));
  assert.ok(fs.existsSync(file), "only sockets are removed");
  const stale = path.join(dir, "stale.sock");
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(stale, r));
  removeStale(stale);
  assert.equal(fs.existsSync(stale), false, "a socket is removed");
  srv.close();
});
