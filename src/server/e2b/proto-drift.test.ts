// The envd .proto files are E2B's wire contract, written here and compiled
// with buf: the checked-in code must be what scripts/generate-e2b-proto.mjs
// makes of them today, and what they describe (packages, messages, fields,
// their numbers, types and oneofs, enums, methods and their streaming) must
// be what the installed E2B SDK (a dev dependency) speaks: the descriptors
// its bundle embeds. On a failure, fix the .proto and run the script.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, type DescriptorProto, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { file_process_process } from "./gen/process/process_pb.js";
import { file_filesystem_filesystem } from "./gen/filesystem/filesystem_pb.js";

function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, "scripts", "generate-e2b-proto.mjs"))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error("cannot find scripts/generate-e2b-proto.mjs above this test");
    dir = up;
  }
  return dir;
}

/**
 * What a file describes on the wire: options (java_package ...) aside, and
 * imports too (protoc-gen-es embeds them beside the descriptor, not in it;
 * the types a field names are compared anyway).
 */
function shape(f: FileDescriptorProto): unknown {
  const msg = (m: DescriptorProto): unknown => ({
    name: m.name,
    map: m.options?.mapEntry ?? false,
    fields: m.field.map((x) => [x.name, x.number, x.label, x.type, x.typeName, x.oneofIndex ?? null, x.proto3Optional]),
    oneofs: m.oneofDecl.map((o) => o.name),
    nested: m.nestedType.map(msg),
    enums: m.enumType.map((e) => [e.name, e.value.map((v) => [v.name, v.number])]),
  });
  return {
    name: f.name,
    package: f.package,
    messages: f.messageType.map(msg),
    enums: f.enumType.map((e) => [e.name, e.value.map((v) => [v.name, v.number])]),
    services: f.service.map((s) => [s.name, s.method.map((m) => [m.name, m.inputType, m.outputType, m.clientStreaming, m.serverStreaming])]),
  };
}

describe("envd proto", () => {
  it("generated code is what scripts/generate-e2b-proto.mjs makes of src/server/e2b/proto", () => {
    const root = repoRoot();
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "corral-e2b-proto-"));
    try {
      execFileSync(process.execPath, [path.join(root, "scripts", "generate-e2b-proto.mjs"), tmp], { cwd: root, stdio: ["ignore", "ignore", "inherit"] });
      for (const rel of ["process/process_pb.ts", "filesystem/filesystem_pb.ts"]) {
        const fresh = fs.readFileSync(path.join(tmp, rel), "utf8");
        const committed = fs.readFileSync(path.join(root, "src", "server", "e2b", "gen", rel), "utf8");
        assert.ok(fresh === committed, `src/server/e2b/gen/${rel} is stale: run \`node scripts/generate-e2b-proto.mjs\``);
      }
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it("describes what the installed e2b SDK speaks", () => {
    const bundle = fs.readFileSync(createRequire(import.meta.url).resolve("e2b").replace(/index\.js$/, "index.mjs"), "utf8");
    const embedded = new Map<string, FileDescriptorProto>();
    for (const m of bundle.matchAll(/fileDesc\("([A-Za-z0-9+/_-]+=*)"/g)) {
      const f = fromBinary(FileDescriptorProtoSchema, Buffer.from(m[1]!, "base64"));
      embedded.set(f.name, f);
    }
    for (const ours of [file_process_process.proto, file_filesystem_filesystem.proto]) {
      const theirs = embedded.get(ours.name);
      assert.ok(theirs, `the e2b bundle embeds no ${ours.name} (it has ${[...embedded.keys()].join(", ")})`);
      assert.deepEqual(shape(ours), shape(theirs));
    }
  });
});
