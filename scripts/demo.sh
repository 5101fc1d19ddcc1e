#!/usr/bin/env bash
# The main job, end to end: corrald up on loopback, an API key, a debian
# sandbox created through the API and a command run in it, then the daemon
# stopped (sandboxes would outlive it; this one is removed by `run`).
set -euo pipefail
cd "$(dirname "$0")/.."
port=${CORRAL_DEMO_PORT:-7070}
corral=./bin/corral

# Built once, with a progress display; quick when it is in the store.
$corral template build debian >/dev/null
key=$($corral admin key create --tenant demo)
key_id=$(echo "$key" | cut -d_ -f2)
$corral daemon --listen "127.0.0.1:$port" > /tmp/corrald-demo.log 2>&1 &
daemon=$!
cleanup() {
  kill "$daemon" 2>/dev/null || true
  wait "$daemon" 2>/dev/null || true
  $corral admin key revoke "$key_id" || true
}
trap cleanup EXIT
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  kill -0 "$daemon" 2>/dev/null || { cat /tmp/corrald-demo.log >&2; exit 1; }
  sleep 0.1
done
echo "corrald is up on 127.0.0.1:$port (log: /tmp/corrald-demo.log)" >&2

export CORRAL_API_URL="http://127.0.0.1:$port" CORRAL_API_KEY="$key"
$corral run --template debian -- python3 -c 'import os; print(os.getpid())'
