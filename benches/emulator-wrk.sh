#!/usr/bin/env bash
# Build in release, start the emulator on a free loopback port, run wrk
# against createMessage (16 keep-alive connections), then stop the emulator.
#
#   benches/emulator-wrk.sh [DURATION] [CONNECTIONS] [THREADS]
#
# Needs wrk (`apt-get install -y wrk`).
set -euo pipefail

duration=${1:-10s}
connections=${2:-16}
threads=${3:-2}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

command -v wrk >/dev/null || { echo "error: wrk not found (apt-get install -y wrk)" >&2; exit 2; }
cargo build --release --quiet

out=$(mktemp)
target/release/transcript-import emulator --addr 127.0.0.1:0 >"$out" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$out"' EXIT

for _ in $(seq 50); do
  [ -s "$out" ] && break
  sleep 0.1
done
addr=$(sed -n 's/^listening on //p' "$out")
[ -n "$addr" ] || { echo "error: the emulator did not start" >&2; exit 1; }

wrk -t"$threads" -c"$connections" -d"$duration" \
  -s benches/wrk/create-message.lua \
  "http://$addr/conversation/v1/conversations/ABC123/messages"
echo
echo "emulator stats:"
curl -s "http://$addr/_emulator/stats" 2>/dev/null || true
echo
