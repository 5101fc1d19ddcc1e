#!/usr/bin/env node
// Regenerates sdk/src/api-types.ts from api/openapi.yaml (the source of
// truth for the HTTP API) with openapi-typescript. Same output as
//   npx openapi-typescript api/openapi.yaml --default-non-nullable false -o sdk/src/api-types.ts
// `--default-non-nullable false`: a property with a `default` stays
// optional, so request bodies (SandboxSpec) do not demand every defaulted
// field. Usage: node sdk/generate.mjs [output-file]
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import openapiTS, { astToString, COMMENT_HEADER } from "openapi-typescript";

const here = path.dirname(fileURLToPath(import.meta.url));
const spec = pathToFileURL(path.join(here, "..", "api", "openapi.yaml"));
const out = path.resolve(process.argv[2] ?? path.join(here, "src", "api-types.ts"));

const ast = await openapiTS(spec, { defaultNonNullable: false, silent: true });
fs.writeFileSync(out, `${COMMENT_HEADER}${astToString(ast)}`, "utf8");
