# services.corral: the corral daemon and the sandboxes, pools, keys and
# shares an operator declares for it (docs/nixos.md).
#
# It renders two things:
#   - /etc/corral/declared.json, the declared state, which the daemon
#     (`corral daemon --declared`) applies on start and on every reload
#     (systemctl reload; a change of the file reloads the unit on switch);
#   - the corral.service unit, hardened.
# Adding, changing or removing a sandbox is a `nixos-rebuild switch`
# away, with no daemon restart: sandboxes made through the API are left
# alone, running sandboxes keep running across daemon restarts.
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption mkEnableOption mkIf types literalExpression;
  cfg = config.services.corral;
  corralLib = import ./lib.nix { inherit lib; };

  # The daemon's own checks, in Nix so that a mistake fails the build naming
  # the option (src/core/sandbox-spec.ts NAME_PATTERN, share-spec.ts).
  namePattern = "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?";
  reservedTargets = [ "/proc" "/sys" "/dev" "/run" "/.corral" ];
  overlaps = a: b: a == b || lib.hasPrefix "${b}/" a || lib.hasPrefix "${a}/" b;
  # Whether `path` is an allowed directory or below one (string prefixes;
  # the daemon compares real paths again, symlinks resolved).
  allowed = path: lib.any (dir: path == dir || lib.hasPrefix "${lib.removeSuffix "/" dir}/" path) cfg.allowedShares;

  shareType = types.submodule {
    options = {
      source = mkOption {
        type = types.str;
        description = "Host directory; it must be (below) one of services.corral.allowedShares.";
      };
      target = mkOption {
        type = types.strMatching "(/[A-Za-z0-9._@+-]+)+";
        description = "Where the sandbox sees it (an absolute path of plain components).";
      };
      readOnly = mkOption {
        type = types.bool;
        default = false;
      };
    };
  };

  sandboxType = types.submodule ({ name, config, ... }: {
    options = {
      type = mkOption {
        type = types.enum [ "vm" "container" ];
        description = "A microVM (QEMU) or a container (crun). Required.";
      };
      template = mkOption {
        type = types.either types.str (types.either types.package (types.listOf types.package));
        default = "busybox";
        example = literalExpression "[ pkgs.git pkgs.nodejs ]";
        description = ''
          A template name (built-in: busybox, debian; or one built with corral
          template build), or packages: their closure is the sandbox's
          /nix/store and their bin/ is on its PATH (a template named
          declared-<sandbox>, rebuilt when the packages change).
        '';
      };
      tenant = mkOption {
        type = types.strMatching namePattern;
        default = "local";
        description = "The tenant it belongs to (its API keys reach it).";
      };
      vcpus = mkOption { type = types.either types.int types.float; default = 1; };
      memory = mkOption { type = types.str; default = "512M"; description = "Bytes or a size like 512M, 2G."; };
      disk = mkOption { type = types.str; default = "1G"; description = "Its writable layer's size (a persistent one's disk grows with it; it cannot shrink)."; };
      persistent = mkOption {
        type = types.bool;
        default = true;
        description = "Keep its writable layer on disk (across restarts and changes); otherwise it lives in memory.";
      };
      env = mkOption { type = types.attrsOf types.str; default = { }; };
      shares = mkOption { type = types.listOf shareType; default = [ ]; };
      writableStore = mkOption {
        type = types.bool;
        default = false;
        description = ''
          A private writable layer over its /nix/store (a closure template, or
          the host's store shared at /nix/store) with Nix's database, so
          nix-build works inside; the host's store is never written. Needs a
          nix in the template (a closure standing on debian-nix).
        '';
      };
      network = mkOption {
        type = types.either (types.enum [ "none" "nat" ]) networkType;
        default = "none";
        example = literalExpression ''{ mode = "nat"; egress.allow = [ "*.pypi.org" ]; networks = [ "build" ]; ports = [ 8000 ]; }'';
        description = ''
          "none" (loopback only), "nat" (outbound through corral's bridge, under
          the always-dropped destinations of docs/networking.md), or the object
          form: an egress policy, named networks, exposed ports.
        '';
      };
      mac = mkOption {
        type = types.nullOr (types.strMatching "[0-9a-f][02468ace](:[0-9a-f]{2}){5}");
        default = null;
        example = "02:00:00:00:00:01";
        description = "A VM's fixed MAC (lowercase, unicast); null: derived from its name (identity.mac).";
      };
      cid = mkOption {
        type = types.nullOr (types.ints.between 3 4294967294);
        default = null;
        description = "A VM's fixed vsock CID; null: derived from its name (identity.cid).";
      };
      autoStart = mkOption {
        type = types.bool;
        default = true;
        description = "Start it when the daemon starts (and when it is found stopped). A persistent one may be declared stopped.";
      };
      restartIfChanged = mkOption {
        type = types.bool;
        default = true;
        description = "Apply a change of its declaration at once (a persistent one is restarted on its disk); otherwise when it is next stopped.";
      };
      identity = mkOption {
        type = types.attrs;
        readOnly = true;
        default = corralLib.identity name
          // lib.optionalAttrs (config.mac != null) { inherit (config) mac; }
          // lib.optionalAttrs (config.cid != null) { inherit (config) cid; };
        defaultText = literalExpression "corral.lib.identity name // fixed mac and cid";
        description = "Its MAC, vsock CID and tap name: derived from its name as the daemon derives them, but for a fixed mac or cid.";
      };
    };
  });

  networkType = types.submodule {
    options = {
      mode = mkOption { type = types.enum [ "none" "nat" ]; default = "nat"; };
      egress = {
        allow = mkOption {
          type = types.nullOr (types.listOf types.str);
          default = null;
          description = "null: every destination but the always-dropped ones; a list (even empty): only these (CIDRs, names, *.domain).";
        };
        deny = mkOption { type = types.listOf types.str; default = [ ]; };
      };
      networks = mkOption {
        type = types.listOf (types.strMatching namePattern);
        default = [ ];
        description = "Named networks of its tenant it joins (members reach each other by name).";
      };
      ports = mkOption {
        type = types.listOf (types.either (types.ints.between 1 65535) (types.submodule {
          options = {
            port = mkOption { type = types.ints.between 1 65535; };
            public = mkOption { type = types.bool; default = false; };
          };
        }));
        default = [ ];
        description = "Ports the daemon serves at their port URLs (public ones without a key).";
      };
    };
  };

  # The spec's form of a network option value.
  networkJson = n:
    if builtins.isString n then n
    else {
      inherit (n) mode networks ports;
      egress = { inherit (n.egress) deny; } // lib.optionalAttrs (n.egress.allow != null) { inherit (n.egress) allow; };
    };

  poolType = types.submodule {
    options = {
      size = mkOption { type = types.ints.between 0 10000; description = "Sandboxes kept ready."; };
      backend = mkOption {
        type = types.enum [ "container" "vm" "gvisor" ];
        default = cfg.defaultBackend;
        defaultText = literalExpression "config.services.corral.defaultBackend";
      };
      vcpus = mkOption { type = types.nullOr (types.either types.int types.float); default = null; };
      memory = mkOption { type = types.nullOr types.str; default = null; };
      disk = mkOption { type = types.nullOr types.str; default = null; };
    };
  };

  dropNulls = lib.filterAttrs (_: v: v != null);

  # Every check whose failure names the option, run when the declared state
  # is rendered: a NixOS build fails with the message.
  check = name: s:
    let
      opt = "services.corral.sandboxes.${name}";
      bad = lib.findFirst (x: x != null) null (
        [
          (if builtins.match namePattern name == null then "${opt}: the name must be 1-63 lowercase letters, digits or '-'" else null)
          (if !s.autoStart && !s.persistent then "${opt}.autoStart: false needs persistent = true" else null)
          (if s.type != "vm" && s.mac != null then "${opt}.mac: a fixed MAC is a VM's (type = \"vm\")" else null)
          (if s.type != "vm" && s.cid != null then "${opt}.cid: a fixed vsock CID is a VM's (type = \"vm\")" else null)
          (let other = sameIdentity name s "mac"; in if other != null then "${opt}.mac: ${s.identity.mac} is also services.corral.sandboxes.${other}'s" else null)
          (let other = sameIdentity name s "cid"; in if other != null then "${opt}.cid: ${toString s.identity.cid} is also services.corral.sandboxes.${other}'s" else null)
        ]
        ++ lib.imap0 (i: sh:
          if !(allowed sh.source) then "${opt}.shares.${toString i}.source: ${sh.source} is not below a directory of services.corral.allowedShares"
          else if lib.any (r: overlaps sh.target r) reservedTargets then "${opt}.shares.${toString i}.target: ${sh.target} is on, below or above ${lib.concatStringsSep ", " reservedTargets}"
          else null) s.shares
      );
    in
    if bad == null then s else throw bad;

  # Another declared VM with the same MAC or CID as `s` fixes (null: none).
  sameIdentity = name: s: field:
    if s.type != "vm" || s.${field} == null then null
    else lib.findFirst (n: n != name && cfg.sandboxes.${n}.type == "vm" && cfg.sandboxes.${n}.identity.${field} == s.${field}) null (lib.attrNames cfg.sandboxes);

  isPackages = t: !(builtins.isString t);
  sandboxJson = name: s0:
    let s = check name s0;
    in {
      inherit (s) tenant autoStart restartIfChanged;
      spec = {
        backend = s.type;
        resources = { inherit (s) vcpus memory disk; };
        inherit (s) env;
        network = networkJson s.network;
        lifetime.mode = if s.persistent then "persistent" else "ephemeral";
      }
      // lib.optionalAttrs (s.mac != null || s.cid != null) { identity = dropNulls { inherit (s) mac cid; }; }
      // lib.optionalAttrs (!isPackages s.template) { inherit (s) template; }
      // lib.optionalAttrs (s.shares != [ ]) { shares = map (sh: { inherit (sh) source target readOnly; }) s.shares; }
      // lib.optionalAttrs s.writableStore { nix.writable = true; };
    } // lib.optionalAttrs (isPackages s.template) {
      nixOutputs = map (p: "${p}") (lib.toList s.template);
    };

  declared = {
    version = 1;
    inherit (cfg) allowedShares defaultBackend;
    apiKeys = lib.mapAttrsToList (tenant: k: { inherit tenant; file = k.keyFile; }) cfg.apiKeys;
    pools = lib.mapAttrsToList (template: p: {
      inherit template;
      inherit (p) size backend;
      resources = dropNulls { inherit (p) vcpus memory disk; };
    }) cfg.pools;
    sandboxes = lib.mapAttrs sandboxJson cfg.sandboxes;
  };

  listenArgs =
    if cfg.listen.socket != null then [ "--socket" cfg.listen.socket ]
    else [ "--listen" cfg.listen.address ];
  adminTenants = lib.attrNames (lib.filterAttrs (_: k: k.admin) cfg.apiKeys);
  daemonArgs =
    [ "--state-dir" cfg.stateDir "daemon" ] ++ listenArgs
    ++ [ "--declared" "/etc/corral/declared.json" ]
    ++ lib.concatMap (t: [ "--admin-tenant" t ]) adminTenants;
in
{
  options.services.corral = {
    enable = mkEnableOption "corral, sandboxes (containers and microVMs) for AI agents and untrusted code";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = literalExpression "pkgs.callPackage ./nix/package.nix { }";
      description = "The corral package (its bin/corral is the CLI and the daemon).";
    };

    stateDir = mkOption {
      type = types.str;
      default = "/var/lib/corral";
      description = "Database, store and sandboxes. Never shared into a sandbox.";
    };

    listen = {
      address = mkOption {
        type = types.nullOr types.str;
        default = "127.0.0.1:7070";
        description = "Loopback HOST:PORT of the HTTP API (unless socket is set).";
      };
      socket = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "A unix socket for the API instead of TCP.";
      };
    };

    cgroupParent = mkOption {
      type = types.strMatching "[A-Za-z0-9_.-]+";
      default = "corral";
      description = "The cgroup every sandbox's cgroup is made under.";
    };

    apiKeys = mkOption {
      type = types.attrsOf (types.submodule {
        options = {
          keyFile = mkOption {
            type = types.str;
            description = ''
              A file holding the tenant's key, crl_<12 hex>_<43 base64url>
              (e.g. from agenix or sops-nix). Outside the Nix store: the store
              is world-readable.
            '';
          };
          admin = mkOption {
            type = types.bool;
            default = false;
            description = "May change what all tenants share: templates, pools, the store, tenants, keys.";
          };
        };
      });
      default = { };
      description = "API keys by tenant, registered on start and reload (and revoked once removed here).";
    };

    defaultBackend = mkOption {
      type = types.enum [ "container" "vm" "gvisor" ];
      default = "container";
      description = "The backend of an API request that names none, and of pools that name none.";
    };

    allowedShares = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "/srv/workspaces" "/nix/store" ];
      description = "Host directories sandboxes may see (shares below them). Never / or the state dir.";
    };

    extraPackages = mkOption {
      type = types.listOf types.package;
      default = with pkgs; [ crun qemu erofs-utils e2fsprogs util-linux nix busybox ];
      defaultText = literalExpression "with pkgs; [ crun qemu erofs-utils e2fsprogs util-linux nix busybox ]";
      description = "Programs the daemon runs (on its PATH).";
    };

    pools = mkOption {
      type = types.attrsOf poolType;
      default = { };
      example = literalExpression ''{ busybox = { size = 2; memory = "256M"; }; }'';
      description = "Warm pools by template name.";
    };

    sandboxes = mkOption {
      type = types.attrsOf sandboxType;
      default = { };
      description = "Declared sandboxes by name: created, changed and removed with the configuration.";
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = (cfg.listen.address != null) || (cfg.listen.socket != null);
        message = "services.corral.listen: set address or socket";
      }
      {
        assertion = lib.all (k: !lib.hasPrefix builtins.storeDir k.keyFile) (lib.attrValues cfg.apiKeys);
        message = "services.corral.apiKeys.<tenant>.keyFile must be outside the Nix store (it is world-readable)";
      }
      {
        assertion = !(lib.elem "/" cfg.allowedShares) && lib.all (d: !(overlaps d cfg.stateDir)) cfg.allowedShares;
        message = "services.corral.allowedShares: never /, never the state dir (${cfg.stateDir}) or what holds it";
      }
    ];

    environment.etc."corral/declared.json".text = builtins.toJSON declared;

    # ProtectSystem=strict: the state dir must exist before the unit starts.
    systemd.tmpfiles.rules = [ "d ${cfg.stateDir} 0711 root root -" ];

    systemd.services.corral = {
      description = "corral sandbox daemon";
      wantedBy = [ "multi-user.target" ];
      after = [ "network.target" ];
      path = cfg.extraPackages;
      environment = {
        CORRAL_CGROUP_PARENT = cfg.cgroupParent;
        CORRAL_STATE_DIR = cfg.stateDir;
      };
      # A new declared state reloads (SIGHUP), never restarts, the daemon.
      reloadTriggers = [ config.environment.etc."corral/declared.json".source ];
      serviceConfig = {
        Type = "exec";
        ExecStart = "${cfg.package}/bin/corral ${lib.escapeShellArgs daemonArgs}";
        ExecReload = "${pkgs.coreutils}/bin/kill -HUP $MAINPID";
        # Sandboxes (crun's containers, each VM's shim, QEMU and virtiofsd)
        # outlive the daemon: the next one takes them over.
        KillMode = "process";
        Restart = "on-failure";
        # root: it makes namespaces, mounts, cgroups and tap devices.
        User = "root";
        NoNewPrivileges = true;
        PrivateTmp = true;
        ProtectSystem = "strict";
        ProtectHome = "read-only";
        ReadWritePaths = [ cfg.stateDir "/run/corral" "-/sys/fs/cgroup" "-/nix/var/nix" "-/var/cache/corral" ]
          ++ map (d: "-${d}") (lib.filter (d: d != "/nix/store") cfg.allowedShares);
        RuntimeDirectory = "corral";
        RuntimeDirectoryPreserve = true;
        # What it needs: mounts and namespaces (SYS_ADMIN), crun's and the
        # sandboxes' (CHOWN ... AUDIT_WRITE: a sandbox gets no capability
        # its parent's bounding set lacks), QEMU's -runas (SETUID, SETGID),
        # signalling sandboxes (KILL), gVisor's ptrace platform (SYS_PTRACE),
        # limits (SYS_RESOURCE), taps (NET_ADMIN).
        CapabilityBoundingSet = [
          "CAP_SYS_ADMIN" "CAP_NET_ADMIN" "CAP_SYS_PTRACE" "CAP_SYS_RESOURCE" "CAP_SYS_CHROOT" "CAP_MKNOD"
          "CAP_CHOWN" "CAP_DAC_OVERRIDE" "CAP_DAC_READ_SEARCH" "CAP_FOWNER" "CAP_FSETID" "CAP_SETUID" "CAP_SETGID"
          "CAP_SETFCAP" "CAP_SETPCAP" "CAP_KILL" "CAP_NET_BIND_SERVICE" "CAP_AUDIT_WRITE"
        ];
        LimitNOFILE = 16384;
      };
    };
  };
}
