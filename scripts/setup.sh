#!/usr/bin/env bash
# Sets up a Debian 12 host for corral, idempotently: host packages, npm
# dependencies, the TypeScript build and the static native binaries.
# Quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "setup: run as root (corral creates namespaces, mounts and cgroups)" >&2
  exit 1
fi

# crun: the OCI runtime. busybox-static: the busybox template. mmdebstrap:
# the debian template. musl-tools: the static agent and launcher.
# bubblewrap, podman, runc: peers measured by npm run bench; wrk: its HTTP load.
# curl: scripts/demo.sh waits for the daemon with it. nix-bin: templates
# from a Nix file (template build --nix), built offline as root with no
# daemon; Nix creates /nix/store and /nix/var/nix on its first build.
# qemu-system-x86, erofs-utils, e2fsprogs: microVM sandboxes (QEMU microvm,
# the template image, a persistent VM's disk; lz4 unpacks the guest kernel's
# ELF from Debian's bzImage for a direct PVH boot). attr: setfattr/getfattr for
# overlayfs opaque-directory xattrs (OCI image import, layer digests). cpio:
# the initramfs test reads corral's own cpio writer back with cpio(1).
# clang, libclang-rt-14-dev: src/agent/agent-fuzz.test.ts builds the agent's
# parser into a libFuzzer binary (-fsanitize=fuzzer,address,undefined; the
# runtime libraries are in libclang-rt-14-dev, Debian 12's clang being 14).
# runsc: gVisor (Debian's 2022-12 build), the OCI runtime of `backend:
# "gvisor"` sandboxes (src/backends/gvisor/). systemd: `systemd-analyze
# verify` of the unit the NixOS module renders (test/functional/nix-module.test.ts).
# nftables, iproute2: sandbox networks (src/network/: the bridge, veth pairs
# and taps, the egress rules). openssh-client: ssh, scp, sftp and
# ssh-keygen, the user's side of `corral ssh` (test/functional/ssh.test.ts).
# tmux: the real terminal `corral shell` is typed into (cli-shell.test.ts).
packages=(crun busybox-static mmdebstrap musl-tools ca-certificates curl bubblewrap podman runc wrk nix-bin qemu-system-x86 erofs-utils e2fsprogs lz4 attr cpio clang libclang-rt-14-dev runsc systemd nftables iproute2 openssh-client tmux)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# npm dependencies, again only when the lock file changed: by its hash, not
# its mtime (a checkout or merge can leave an older mtime on a newer lock).
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.corral-lock-sha256 2>/dev/null)" != "$lock_hash" ]; then
  npm ci --no-audit --no-fund
  echo "$lock_hash" > node_modules/.corral-lock-sha256
fi

npm run --silent build

# The guest kernel of microVMs: Debian's cloud kernel package, kept as a .deb
# in /var/cache/corral/debs (corral unpacks vmlinuz and the modules it needs
# into each state dir). Downloaded once, by the same code corral uses
# (src/backends/vm/kernel.ts); delete the cache to pick up a newer kernel.
fetch_kernel='import("./dist/src/backends/vm/kernel.js").then((m) => m.kernelDeb())'
node -e "$fetch_kernel" 2>/dev/null || { apt-get update -q && node -e "$fetch_kernel"; }
