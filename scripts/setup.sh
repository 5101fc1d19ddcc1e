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
# curl: scripts/demo.sh waits for the daemon with it. attr: setfattr/getfattr
# for overlayfs opaque-directory xattrs (OCI image import, layer digests).
packages=(crun busybox-static mmdebstrap musl-tools ca-certificates curl bubblewrap podman runc wrk attr)
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

# npm dependencies, again only when the lock file changed.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

npm run --silent build
