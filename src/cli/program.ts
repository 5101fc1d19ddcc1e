// Every `corral` command: its name, arguments, options and help, and
// where its code is. Nothing here loads a command's code: each `run`
// imports its file under commands/ when that command runs (youki-style, a
// file per command or command group), so `corral --help` loads this file,
// args.ts and help.ts, and `corral exec` through a daemon adds exec.ts and
// the SDK, never the runtime.
import type { CommandSpec, Parsed } from "./args.js";
import { Context, type Globals } from "./context.js";
import type { Action } from "./commands/action.js";
import { NETWORK_OPTIONS, POOL_RESOURCE_OPTIONS, SPEC_OPTIONS } from "./spec-flags.js";

/** `run` for a command whose code is export `name` of the module `load` imports. */
function lazy<K extends string, M extends Record<K, Action>>(load: () => Promise<M>, name: K): (p: Parsed) => Promise<number | void> {
  // The context is closed by main.ts, once the exit status is set (closeContexts).
  return async (p) => (await load())[name](new Context(p.globals as Globals), p);
}

const STDIN_HELP = "pass stdin to the command (through a daemon, stdin is read to its end before the command starts)";
const COMMAND_ARG = { name: "<command...>", help: "the command and its arguments (after --, or after the sandbox)", rest: true } as const;
const SANDBOX = { name: "<sandbox>", help: "name or id" } as const;
const SANDBOXES = { name: "<sandbox...>", help: "names or ids" } as const;

const sandboxCommands: CommandSpec[] = [
  {
    name: "run",
    help: "start a throwaway sandbox, run a command in it, remove it; exits with the command's status",
    args: [COMMAND_ARG],
    options: [...SPEC_OPTIONS, { flags: "-i, --interactive", help: STDIN_HELP }],
    run: lazy(() => import("./commands/run.js"), "run"),
  },
  {
    name: "create",
    help: "start a sandbox and print its name",
    options: SPEC_OPTIONS,
    run: lazy(() => import("./commands/create.js"), "create"),
  },
  {
    name: "exec",
    help: "run a command in a sandbox; exits with the command's status",
    args: [SANDBOX, COMMAND_ARG],
    options: [
      { flags: "-e, --env <KEY=VALUE>", help: "environment variable", repeat: true },
      { flags: "-w, --workdir <dir>", help: "working directory" },
      { flags: "-i, --interactive", help: STDIN_HELP },
      { flags: "-t, --tty", help: "run it on a terminal (with -i: `exec -it`): raw keyboard, window size, Ctrl-C to the command" },
      { flags: "--timeout <seconds>", help: "kill the command after this long: seconds (0.5, 30) or a duration (10m, 2h)" },
    ],
    run: lazy(() => import("./commands/exec.js"), "exec"),
  },
  {
    name: "shell",
    help: "a login shell (or a command) on a terminal in a sandbox; exits with its status",
    args: [SANDBOX, { name: "[command...]", help: "instead of the shell (after --)", rest: true }],
    options: [
      { flags: "-e, --env <KEY=VALUE>", help: "environment variable", repeat: true },
      { flags: "-w, --workdir <dir>", help: "working directory" },
    ],
    run: lazy(() => import("./commands/shell.js"), "shell"),
  },
  {
    name: "ssh",
    help: "ssh into a sandbox with your own ssh client, through the daemon (keys: admin ssh-key add)",
    args: [SANDBOX, { name: "[command...]", help: "a command instead of a shell (after --)", rest: true }],
    options: [{ flags: "-i, --identity <file>", help: "the private key ssh logs in with (ssh -i; default: ssh's own)" }],
    run: lazy(() => import("./commands/ssh.js"), "ssh"),
  },
  {
    name: "ssh-config",
    help: "print ssh config Host blocks (ProxyCommand through the daemon, host keys in corral's known_hosts) for running sandboxes",
    args: [{ name: "[sandbox...]", help: "only these (default: all running)" }],
    run: lazy(() => import("./commands/ssh.js"), "sshConfig"),
  },
  {
    name: "ssh-proxy",
    help: "ssh's ProxyCommand (ssh-config writes it): the SSH connection to a sandbox through the daemon on stdin and stdout",
    args: [SANDBOX],
    run: lazy(() => import("./commands/ssh.js"), "sshProxy"),
  },
  {
    name: "cp",
    help: "copy a file (or with -r a directory) between the host and a sandbox: cp [-r] SRC SANDBOX:PATH or cp [-r] SANDBOX:PATH DST",
    args: [{ name: "<src>" }, { name: "<dst>" }],
    options: [{ flags: "-r, --recursive", help: "copy directories (as docker cp: into DST when it is a directory, else as DST; SRC/. copies its contents)" }],
    run: lazy(() => import("./commands/cp.js"), "cp"),
  },
  {
    name: "ls",
    alias: "ps",
    help: "list sandboxes",
    options: [{ flags: "--json", help: "print JSON" }],
    run: lazy(() => import("./commands/ls.js"), "ls"),
  },
  {
    name: "logs",
    help: "print a VM's serial console or a container's runtime log (the last 64 KiB)",
    args: [SANDBOX],
    run: lazy(() => import("./commands/logs.js"), "logs"),
  },
  {
    name: "inspect",
    help: "print a sandbox's record and usage (null when not running) as JSON",
    args: [SANDBOX],
    run: lazy(() => import("./commands/inspect.js"), "inspect"),
  },
  {
    name: "rm",
    help: "stop and remove sandboxes",
    args: [SANDBOXES],
    options: [{ flags: "-f, --force", help: "pass over sandboxes that do not exist" }],
    run: lazy(() => import("./commands/rm.js"), "rm"),
  },
  {
    name: "stop",
    help: "stop persistent sandboxes: their processes end, their disk stays",
    args: [SANDBOXES],
    run: lazy(() => import("./commands/start-stop.js"), "stop"),
  },
  {
    name: "start",
    help: "start stopped sandboxes again, with the disk they had",
    args: [SANDBOXES],
    run: lazy(() => import("./commands/start-stop.js"), "start"),
  },
  {
    name: "port",
    help: "print the URL a daemon serves a sandbox's port at (PORT-ID.localhost, with its access token)",
    args: [SANDBOX, { name: "<port>", help: "a TCP port the sandbox listens on (its loopback will do)" }],
    run: lazy(() => import("./commands/net.js"), "port"),
  },
  {
    name: "net",
    help: "a running sandbox's network",
    commands: [
      {
        name: "set",
        help: "replace its egress policy and named networks, at once (its mode stays)",
        args: [SANDBOX],
        options: NETWORK_OPTIONS.filter((o) => !o.flags.startsWith("--network")),
        run: lazy(() => import("./commands/net.js"), "netSet"),
      },
    ],
  },
  {
    name: "promote",
    help: "make sandboxes persistent: no timeout, kept with what they wrote until rm",
    args: [SANDBOXES],
    run: lazy(() => import("./commands/promote.js"), "promote"),
  },
];

const resourceCommands: CommandSpec[] = [
  {
    name: "template",
    help: "manage templates",
    commands: [
      {
        name: "ls",
        help: "list templates in the store and the built-in ones",
        run: lazy(() => import("./commands/template.js"), "ls"),
      },
      {
        name: "build",
        help: "build a built-in template now (otherwise built on first use), or a new one from a Nix file (--nix) or an image archive (--oci)",
        args: [{ name: "<name>" }],
        options: [
          { flags: "--nix <file>", help: "nix-build FILE and mount its closure at /nix/store (on the busybox template; its outputs' bin/ first in PATH)" },
          { flags: "--share-host-store", help: "with --nix: mount the host's whole /nix/store read-only instead of the closure" },
          { flags: "--base <template>", help: "with --nix: the template it stands on (default busybox; debian-nix has nix-build for nix.writable sandboxes)" },
          { flags: "--oci <archive>", help: "docker save / podman save / OCI layout tar (plain or gzip) to import as template NAME" },
        ],
        run: lazy(() => import("./commands/template.js"), "build"),
      },
      {
        name: "commit",
        help: "make a template of a persistent sandbox: its template plus what it has written",
        args: [{ name: "<sandbox>" }, { name: "<name>", help: "the new template's name" }],
        run: lazy(() => import("./commands/template.js"), "commit"),
      },
      {
        name: "rm",
        help: "forget a template (its layers go at the next store gc, once no sandbox uses them)",
        args: [{ name: "<name>" }],
        run: lazy(() => import("./commands/template.js"), "rm"),
      },
    ],
  },
  {
    name: "snapshot",
    help: "snapshots of microVM sandboxes",
    commands: [
      {
        name: "create",
        help: "save a running microVM (memory, devices, its disk if persistent); it runs on",
        args: [{ name: "<sandbox>" }, { name: "<name>" }],
        run: lazy(() => import("./commands/snapshot.js"), "create"),
      },
      {
        name: "restore",
        help: "a new sandbox that starts where the snapshot was, with its own identity",
        args: [{ name: "<name>" }],
        options: [{ flags: "--name <name>", help: "name of the new sandbox" }],
        run: lazy(() => import("./commands/snapshot.js"), "restore"),
      },
      { name: "ls", help: "list snapshots", run: lazy(() => import("./commands/snapshot.js"), "ls") },
      { name: "rm", help: "delete a snapshot and its files", args: [{ name: "<name>" }], run: lazy(() => import("./commands/snapshot.js"), "rm") },
    ],
  },
  {
    name: "store",
    help: "the shared layer store",
    commands: [
      { name: "du", help: "disk used by shared layers (once each) and by each sandbox privately", run: lazy(() => import("./commands/store.js"), "du") },
      { name: "gc", help: "remove layers and VM images no template names and no sandbox uses", run: lazy(() => import("./commands/store.js"), "gc") },
    ],
  },
  {
    name: "daemon",
    help: "run corrald, the HTTP API (sandboxes keep running when it stops)",
    options: [
      { flags: "--listen <host:port>", help: "loopback TCP address", default: "127.0.0.1:7070" },
      { flags: "--socket <path>", help: "listen on a unix socket instead" },
      { flags: "--body-limit <bytes>", help: "largest JSON request body", default: "1048576" },
      { flags: "--admin-tenant <name>", help: "a tenant whose keys may change what all tenants share: templates, pools, the store, tenants, keys", repeat: true },
      { flags: "--default-max-sandboxes <n>", help: "sandboxes a tenant without its own quota may have (0: no limit)", default: "100" },
      { flags: "--default-max-memory <size>", help: "memory the sandboxes of a tenant without its own quota may have in all (0: no limit)", default: "0" },
      { flags: "--create-rate <n>", help: "sandboxes each tenant may start per second through the API, on average (0: no limit)", default: "10" },
      { flags: "--create-burst <n>", help: "sandboxes each tenant may start at once before --create-rate applies", default: "20" },
      { flags: "--public-metrics", help: "serve GET /metrics without a key (it names every tenant; default: an admin tenant's key)" },
      { flags: "--template-import-tenant <name>", help: "a tenant whose keys may import image archives as templates, shared by all tenants", repeat: true },
      { flags: "--allow-share <dir>", help: "a host directory sandboxes may see (shares below it); never / or the state dir", repeat: true },
      { flags: "--declared <file>", help: "the operator's declared state (JSON, as the NixOS module renders it): applied on start and on SIGHUP" },
      { flags: "--e2b-listen <host:port>", help: "also serve E2B's API here, for E2B's SDK (E2B_API_URL and E2B_SANDBOX_URL; docs/e2b.md); off unless given" },
      { flags: "--e2b-backend <kind>", help: "what E2B sandboxes are: container, vm or gvisor", default: "container" },
      { flags: "--default-network <mode>", help: "network of sandboxes whose spec names none: none or nat", default: "none" },
      { flags: "--net-range <cidr>", help: "IPv4 range of sandbox addresses, checked against the host's routes (default 10.213.0.0/16)" },
      { flags: "--dns-upstream <addr>", help: "DNS server corral's resolver forwards to (default: /etc/resolv.conf's)", repeat: true },
      { flags: "--port-domain <domain>", help: "domain of port URLs, PORT-ID.DOMAIN", default: "localhost" },
    ],
    run: lazy(() => import("./commands/daemon.js"), "daemon"),
  },
  {
    name: "admin",
    help: "tenants, API keys and warm pools (through a daemon: an admin tenant's key)",
    commands: [
      {
        name: "key",
        help: "API keys",
        commands: [
          {
            name: "create",
            help: "create an API key for a tenant (created if new); the key is printed once",
            options: [{ flags: "--tenant <name>", help: "the tenant", required: true }],
            run: lazy(() => import("./commands/admin.js"), "keyCreate"),
          },
          {
            name: "ls",
            help: "list API keys (never the keys themselves)",
            options: [{ flags: "--tenant <name>", help: "only this tenant's" }],
            run: lazy(() => import("./commands/admin.js"), "keyLs"),
          },
          { name: "revoke", help: "revoke an API key", args: [{ name: "<id>", help: "the key's id (admin key ls)" }], run: lazy(() => import("./commands/admin.js"), "keyRevoke") },
        ],
      },
      {
        name: "ssh-key",
        help: "SSH public keys that log in to a tenant's sandboxes (corral ssh, ssh-config)",
        commands: [
          {
            name: "add",
            help: "register a public key (a .pub file, or - for stdin); prints its id and fingerprint",
            args: [{ name: "<file>" }],
            options: [{ flags: "--tenant <name>", help: "the tenant (state dir only; through a daemon: the API key's)" }],
            run: lazy(() => import("./commands/ssh.js"), "sshKeyAdd"),
          },
          {
            name: "ls",
            help: "list the registered keys",
            options: [{ flags: "--tenant <name>", help: "only this tenant's (state dir only)" }],
            run: lazy(() => import("./commands/ssh.js"), "sshKeyLs"),
          },
          {
            name: "rm",
            help: "remove a key",
            args: [{ name: "<id>" }],
            options: [{ flags: "--tenant <name>", help: "the tenant (state dir only)" }],
            run: lazy(() => import("./commands/ssh.js"), "sshKeyRm"),
          },
        ],
      },
      {
        name: "pool",
        help: "warm pools of pre-started sandboxes, kept full by corrald",
        commands: [
          {
            name: "set",
            help: "keep SIZE sandboxes of a template (and resource shape) ready; 0 empties the pool; prints the pool's key",
            args: [{ name: "<template>" }],
            options: [
              { flags: "--size <n>", help: "how many to keep ready", required: true },
              ...POOL_RESOURCE_OPTIONS,
              { flags: "--backend <kind>", help: "container, gvisor or vm (vm pools fill from a snapshot)", default: "container" },
              { flags: "--network <mode>", help: "none or nat (a claim applies the claimant's egress policy)", default: "none" },
            ],
            run: lazy(() => import("./commands/admin.js"), "poolSet"),
          },
          { name: "ls", help: "list pools and how full they are", run: lazy(() => import("./commands/admin.js"), "poolLs") },
          {
            name: "rm",
            help: "stop keeping sandboxes ready in pools (their target becomes 0; corrald removes the ready ones)",
            args: [{ name: "<pool...>", help: "pool keys, as admin pool ls shows them" }],
            run: lazy(() => import("./commands/admin.js"), "poolRm"),
          },
        ],
      },
      {
        name: "tenant",
        help: "tenants and their quotas",
        commands: [
          {
            name: "create",
            help: "create a tenant",
            args: [{ name: "<name>" }],
            options: [
              { flags: "--max-sandboxes <n>", help: "most sandboxes at once" },
              { flags: "--max-memory <size>", help: "most memory over all its sandboxes, e.g. 8G" },
            ],
            run: lazy(() => import("./commands/admin.js"), "tenantCreate"),
          },
          {
            name: "quota",
            help: "change a tenant's quotas",
            args: [{ name: "<name>" }],
            options: [
              { flags: "--max-sandboxes <n>", help: "most sandboxes at once (none: unlimited)" },
              { flags: "--max-memory <size>", help: "most memory over all its sandboxes (none: unlimited)" },
            ],
            run: lazy(() => import("./commands/admin.js"), "tenantQuota"),
          },
          { name: "ls", help: "list tenants and their quotas", run: lazy(() => import("./commands/admin.js"), "tenantLs") },
        ],
      },
    ],
  },
];

export const program: CommandSpec = {
  name: "corral",
  help: "sandboxes for untrusted code: containers and microVMs from one spec",
  options: [
    { flags: "--state-dir <dir>", help: "state directory (default $CORRAL_STATE_DIR or /var/lib/corral)" },
    { flags: "--api-url <url>", help: "act through this corral daemon (default $CORRAL_API_URL unless --state-dir is given)" },
    { flags: "--api-key <key>", help: "API key for the daemon (default $CORRAL_API_KEY)" },
  ],
  commands: [...sandboxCommands, ...resourceCommands],
  epilog:
    "Without a daemon URL every command acts on the state dir (through the daemon serving it, when one does, with the credential it keeps there); with one (--api-url or $CORRAL_API_URL) every command but daemon goes through it, " +
    "with the key of --api-key or $CORRAL_API_KEY. --state-dir acts on the state dir even when $CORRAL_API_URL is set: that is how the first key is made " +
    "(corral --state-dir DIR admin key create --tenant ops, for a daemon started with --admin-tenant ops). " +
    "Through a daemon, admin (but pool ls), store, template rm and commit take an admin tenant's key, template build --oci an admin's or an importer's; template build --nix needs the state dir.",
};
