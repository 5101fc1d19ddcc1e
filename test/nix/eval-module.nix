# Evaluates nix/module.nix with nixpkgs' lib alone (no NixOS here): the few
# NixOS options it sets (assertions, environment.etc, systemd.services)
# are declared plainly, and pkgs is a stand-in holding what the module
# reads when extraPackages and package are given. Returns the declared
# state's JSON text, the unit as systemd reads it, and the failed
# assertions. Used by test/functional/nix-module.test.ts.
{ libPath, configFile, repo }:
let
  lib = import libPath;
  inherit (lib) mkOption types;
  nixosStubs = { ... }: {
    options = {
      assertions = mkOption { type = types.listOf types.unspecified; default = [ ]; };
      environment.etc = mkOption {
        type = types.attrsOf (types.submodule ({ name, ... }: {
          options.text = mkOption { type = types.str; };
          options.source = mkOption { type = types.str; default = "/etc/static/${name}"; };
        }));
        default = { };
      };
      systemd.services = mkOption { type = types.attrsOf types.unspecified; default = { }; };
      systemd.tmpfiles.rules = mkOption { type = types.listOf types.str; default = [ ]; };
    };
  };
  pkgs = {
    # ExecReload's kill: Debian's, at /usr/bin/kill.
    coreutils = "/usr";
  };
  eval = lib.evalModules {
    modules = [ (repo + "/nix/module.nix") nixosStubs (import configFile) ];
    specialArgs = { inherit pkgs; };
  };
  c = eval.config;
  svc = c.systemd.services.corral;

  # What NixOS's systemd module writes for a service (a subset: the
  # settings the module uses), a list value as one line per item.
  value = v: if builtins.isBool v then (if v then "true" else "false") else toString v;
  lines = attrs: lib.concatStrings (lib.mapAttrsToList (k: v: lib.concatMapStrings (x: "${k}=${value x}\n") (lib.toList v)) attrs);
  unit = ''
    [Unit]
    Description=${svc.description}
    ${lines { After = svc.after; }}
    [Service]
    ${lib.concatStrings (lib.mapAttrsToList (k: v: "Environment=\"${k}=${v}\"\n") (svc.environment // { PATH = lib.makeBinPath svc.path; }))}
    ${lines svc.serviceConfig}
    [Install]
    ${lines { WantedBy = svc.wantedBy; }}
  '';
in
{
  declared = c.environment.etc."corral/declared.json".text;
  inherit unit;
  reloadTriggers = svc.reloadTriggers;
  tmpfiles = c.systemd.tmpfiles.rules;
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) c.assertions);
  identities = lib.mapAttrs (_: s: s.identity) c.services.corral.sandboxes;
}
