{
  description = "corral: self-hosted sandboxes (containers and microVMs) for AI coding agents and untrusted code";

  # nixpkgs only. The module and lib need nothing but nixpkgs' lib; the
  # package and dev shell need packages (x86_64-linux: the guest init and
  # launcher are x86-64 static binaries, QEMU microvm).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      system = "x86_64-linux";
      pkgsFor = system: nixpkgs.legacyPackages.${system};
    in
    {
      # corral.lib.identity "dev" -> { mac, cid, tap }: what the daemon derives from a sandbox name.
      lib = import ./nix/lib.nix { inherit (nixpkgs) lib; };

      nixosModules.default = { pkgs, lib, ... }: {
        imports = [ ./nix/module.nix ];
        services.corral.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
      };

      packages.${system}.default = (pkgsFor system).callPackage ./nix/package.nix { };

      devShells.${system}.default =
        let pkgs = pkgsFor system;
        in pkgs.mkShell {
          packages = with pkgs; [ nodejs_20 musl python3 crun qemu erofs-utils e2fsprogs nix busybox systemd ];
          shellHook = ''export CORRAL_CC=${pkgs.musl.dev}/bin/musl-gcc'';
        };
    };
}
