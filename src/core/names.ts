import { z } from "zod";
import { InvalidArgumentError } from "./errors.js";
import { NAME_PATTERN } from "./sandbox-spec.js";

/**
 * The one name type of corral: every name or id that reaches a path
 * parameter of the API, or the library's lookups (templates, snapshots,
 * sandboxes, tenants, pools, keys, SSH keys), is one of these kinds, checked here
 * by zod before it is used; api/openapi.yaml declares the same patterns
 * (names.test.ts compares them). None admits '/', '\', NUL or a leading
 * '.', so no name can leave the directory it is joined to: a template
 * name was joined unchecked to `templates/<name>.json` by the store, a
 * file read as root (issue 18: an existence oracle for any `*.json`).
 */
export const NAME_KINDS = {
  sandbox: { pattern: /^[a-z0-9][a-z0-9-]{0,63}$/, what: "a sandbox id or name: lowercase letters, digits and '-'" },
  template: { pattern: /^[a-z0-9][a-z0-9._-]{0,127}$/, what: "a template name: 1-128 lowercase letters, digits, '.', '_' or '-'" },
  snapshot: { pattern: /^[a-z0-9][a-z0-9._-]{0,62}$/, what: "a snapshot name: 1-63 lowercase letters, digits, '.', '_' or '-'" },
  tenant: { pattern: NAME_PATTERN, what: "a tenant name: 1-63 lowercase letters, digits or '-', not starting or ending with '-'" },
  pool: { pattern: /^[0-9a-f]{16}$/, what: "a pool key: 16 hex digits" },
  key: { pattern: /^[0-9a-f]{12}$/, what: "an API key id: 12 hex digits" },
  sshKey: { pattern: /^[0-9a-f]{12}$/, what: "an SSH key id: 12 hex digits" },
} as const;

export type NameKind = keyof typeof NAME_KINDS;

/** The zod schema of each kind. */
export const Names: { readonly [K in NameKind]: z.ZodString } = Object.fromEntries(
  Object.entries(NAME_KINDS).map(([k, v]) => [k, z.string().regex(v.pattern, `must be ${v.what}`)]),
) as { [K in NameKind]: z.ZodString };

/** `value` if it is a valid name of `kind`, else a 400 naming the kind, the value and the rule. */
export function checkName(kind: NameKind, value: unknown, label: string = kind): string {
  const r = Names[kind].safeParse(value);
  if (r.success) return r.data;
  throw new InvalidArgumentError(`${label} ${JSON.stringify(value)} is not valid: it must be ${NAME_KINDS[kind].what}`);
}

/**
 * The kind of each path parameter of the API, by the path's first
 * segment after /v1 and the parameter's name; undefined for one that is
 * not a name (a pid). The operation table refuses to start with a string
 * path parameter that has no kind here (openapi-params.ts).
 */
export function pathParameterKind(apiPath: string, param: string): NameKind | undefined {
  const resource = apiPath.split("/")[2];
  const kinds: Record<string, Record<string, NameKind>> = {
    sandboxes: { id: "sandbox" },
    templates: { name: "template" },
    snapshots: { name: "snapshot" },
    tenants: { name: "tenant" },
    pools: { key: "pool" },
    keys: { id: "key" },
    "ssh-keys": { keyId: "sshKey" },
  };
  return resource === undefined ? undefined : kinds[resource]?.[param];
}
