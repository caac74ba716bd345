#!/usr/bin/env bash
# Load test of each resource limit at a hostile probe's scale (scripts/load/limits.mjs): invented
# methods against the metrics, 300 slowloris connections, 10,000 idle connections, 60 distinct
# 4.9 MB unconvertible documents against the dead-letter cap. The mediator is the release build
# with its default limits, against the fast upstream (scripts/load/fast-upstream.mjs); everything
# binds to 127.0.0.1 and is stopped at the end. Prints the figures; exit 1 if a bound did not hold.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."

port=${LOAD_PORT:-6100}
upstream_port=${LOAD_UPSTREAM_PORT:-6190}
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf -- "$work"
}
trap cleanup EXIT

# The client side opens 10,000 sockets; the mediator keeps its own (usual) descriptor limit.
ulimit -n 20000 2>/dev/null || echo "limits.sh: could not raise the open-file limit; the idle test may fall short" >&2
cargo build --release --quiet
node scripts/load/fast-upstream.mjs "$upstream_port" >"$work/upstream.log" 2>&1 &
pids+=($!)
db="$work/dead-letters.sqlite3"
(
  ulimit -n 1024
  exec env PORT="$port" OPENHIM_REGISTER=false LOG_LEVEL=warn DEAD_LETTER_DB="$db" \
    FHIR_URL="http://127.0.0.1:$upstream_port" CHT_URL="http://127.0.0.1:$upstream_port" \
    target/release/cht-fhir-mediator serve
) >"$work/mediator.log" 2>&1 &
mediator=$!
pids+=("$mediator")
for _ in $(seq 50); do
  curl -fs "http://127.0.0.1:$port/health/live" >/dev/null 2>&1 && break
  sleep 0.2
done
node scripts/load/limits.mjs "http://127.0.0.1:$port" "$mediator" "$db"
