#!/usr/bin/env bash
# Load harness: the mediator (release build) under sustained load on /cht/patient and
# /cht/encounter, against a minimal fast upstream (scripts/load/fast-upstream.mjs: answers like a
# FHIR server at once) or against the real FHIR server of the local stack.
#
#   scripts/load.sh [fast|hfs] [seconds=20] [connections=32]
#   SOAK=600 RATE=500 scripts/load.sh soak     # steady rate for SOAK seconds, RSS sampled
#
# Reports, per endpoint: requests/s, latency p50/p99 (for the fast upstream that is the latency the
# mediator adds: the upstream answers in microseconds), non-2xx answers, and the mediator's peak
# RSS (VmHWM). Needs wrk (Debian: apt-get install wrk) and node. Binds to 127.0.0.1 only and stops
# everything it started. Load generator and mediator share the machine's cores.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."

mode=${1:-fast}
seconds=${2:-20}
connections=${3:-32}
port=${LOAD_PORT:-6100}
upstream_port=${LOAD_UPSTREAM_PORT:-6190}
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf -- "$work"
}
trap cleanup EXIT

command -v wrk >/dev/null || { echo "load.sh: wrk is needed (apt-get install wrk)" >&2; exit 2; }
cargo build --release --quiet
bin=target/release/cht-fhir-mediator

case $mode in
  fast | soak)
    node scripts/load/fast-upstream.mjs "$upstream_port" >"$work/upstream.log" 2>&1 &
    pids+=($!)
    fhir_url="http://127.0.0.1:$upstream_port"
    cht_url=$fhir_url
    ;;
  hfs)
    # shellcheck disable=SC1090 # written by stack.sh up
    source <(scripts/stack.sh env) || { echo "load.sh: start the stack first (scripts/stack.sh up)" >&2; exit 2; }
    fhir_url=$STACK_FHIR_URL
    cht_url=$STACK_CHT_URL
    ;;
  *) echo "usage: scripts/load.sh [fast|hfs|soak] [seconds] [connections]" >&2; exit 2 ;;
esac

PORT=$port HOST=127.0.0.1 OPENHIM_REGISTER=false LOG_LEVEL=warn FHIR_URL=$fhir_url CHT_URL=$cht_url \
  DEAD_LETTER_DB="$work/dead-letters.sqlite3" "$bin" serve >"$work/mediator.log" 2>&1 &
mediator=$!
pids+=("$mediator")
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/health/live" >/dev/null && break; sleep 0.1; done
sleep 0.5

peak_rss() { awk '/VmHWM/ {print $2 " kB"}' "/proc/$mediator/status"; }

run() { # name path lua
  local name=$1 path=$2 lua=$3 out="$work/$1.txt"
  wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$lua" "http://127.0.0.1:$port$path" >"$out"
  local rps p50 p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' "$out")
  p50=$(awk '$1 == "50%" {print $2}' "$out")
  p99=$(awk '$1 == "99%" {print $2}' "$out")
  errors=$(awk '/Non-2xx or 3xx responses/ {print $5}' "$out")
  printf '%-16s %10s req/s   p50 %-9s p99 %-9s non-2xx %-8s peak RSS %s\n' "$name" "$rps" "$p50" "$p99" "${errors:-0}" "$(peak_rss)"
}

if [[ $mode == soak ]]; then
  duration=${SOAK:-600}
  rate=${RATE:-500}
  echo "soak: ${rate} req/s on /cht/patient for ${duration} s; RSS (kB) every 30 s:"
  node scripts/load/steady.mjs "http://127.0.0.1:$port/cht/patient" "$rate" "$duration" >"$work/steady.log" 2>&1 &
  steady=$!
  pids+=("$steady")
  for ((t = 0; t < duration; t += 30)); do
    sleep 30
    printf '  t=%4ss  VmRSS %s\n' "$((t + 30))" "$(awk '/VmRSS/ {print $2}' "/proc/$mediator/status")"
  done
  wait "$steady" || true
  tail -1 "$work/steady.log"
  echo "peak RSS $(peak_rss)"
  exit 0
fi

echo "mediator $(${bin} --version) against $mode upstream; ${seconds}s per endpoint, $connections connections"
run cht-patient /cht/patient scripts/load/patient.lua
run cht-encounter /cht/encounter scripts/load/encounter.lua
