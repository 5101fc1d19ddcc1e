#!/usr/bin/env bash
# The main job, end to end, saying what it does as it goes: corrald up on
# loopback, an API key, a debian sandbox created through the API, python3
# run in it, the sandbox removed, the daemon stopped (sandboxes would
# outlive it). Every time printed is measured here, around the corral
# command a user would type (so it includes the command's own start-up).
# State: $CORRAL_STATE_DIR or /var/lib/corral, as for any corral command.
#   CORRAL_DEMO_PORT     daemon port (7070)
#   CORRAL_DEMO_BACKEND  container (default) or vm
set -euo pipefail
cd "$(dirname "$0")/.."
port=${CORRAL_DEMO_PORT:-7070}
backend=${CORRAL_DEMO_BACKEND:-container}
template=debian
corral=./bin/corral

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
seconds() { printf '%d.%d s' $(( $1 / 1000 )) $(( $1 % 1000 / 100 )); }
say() { printf '%s\n' "$*"; }
# The field of a sandbox's JSON record (corral inspect) at a dotted path.
field() { node -e 'let v = JSON.parse(require("fs").readFileSync(0, "utf8")); for (const k of process.argv[1].split(".")) v = v[k]; console.log(v)' "$1"; }

# The template: built once (~40 s for debian, with a progress display),
# then taken from the store.
if $corral template ls | grep -Eq "^$template +built "; then
  say "template  $template (already built, in the store)"
else
  t0=$(now_ms)
  $corral template build "$template" >/dev/null
  say "template  $template (built just now, in $(seconds $(( $(now_ms) - t0 ))); later sandboxes share it)"
fi

key=$($corral admin key create --tenant demo)
key_id=$(echo "$key" | cut -d_ -f2)
$corral daemon --listen "127.0.0.1:$port" > /tmp/corrald-demo.log 2>&1 &
daemon=$!
name=""
cleanup() {
  [ -n "$name" ] && CORRAL_API_URL="http://127.0.0.1:$port" CORRAL_API_KEY="$key" $corral rm -f "$name" 2>/dev/null || true
  kill "$daemon" 2>/dev/null || true
  wait "$daemon" 2>/dev/null || true
  env -u CORRAL_API_URL -u CORRAL_API_KEY $corral admin key revoke "$key_id" || true
}
trap cleanup EXIT
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  kill -0 "$daemon" 2>/dev/null || { cat /tmp/corrald-demo.log >&2; exit 1; }
  sleep 0.1
done
say "daemon    corrald on http://127.0.0.1:$port (log: /tmp/corrald-demo.log), a key for tenant demo"

# From here on every command goes through the daemon's API.
export CORRAL_API_URL="http://127.0.0.1:$port" CORRAL_API_KEY="$key"
name="demo-$$"
t0=$(now_ms)
$corral create --template "$template" --backend "$backend" --name "$name" >/dev/null
created=$(( $(now_ms) - t0 ))
record=$($corral inspect "$name")
say "sandbox   $name: template $(echo "$record" | field spec.template), backend $(echo "$record" | field spec.backend), $(( $(echo "$record" | field spec.resources.memory) / 1048576 )) MiB, created in $created ms"

cmd=(python3 -c 'import os, platform; print(f"hello from python {platform.python_version()} on {platform.system()} {platform.release()}, pid {os.getpid()}, uid {os.getuid()}")')
say "command   corral exec $name -- ${cmd[0]} ${cmd[1]} '${cmd[2]}'"
t0=$(now_ms)
status=0
output=$($corral exec "$name" -- "${cmd[@]}") || status=$?
ran=$(( $(now_ms) - t0 ))
say "output    $output"
say "exec      exit status $status, $ran ms for the whole corral exec (process start, API call, command)"
t0=$(now_ms)
$corral rm "$name"
name=""
say "removed   in $(( $(now_ms) - t0 )) ms; nothing of it is left on the host"
exit "$status"
