#!/usr/bin/env bash
# CPU instructions per request, this tree's release build against a baseline commit's: each build
# runs under valgrind's callgrind against the fast upstream (scripts/load/fast-upstream.mjs); per
# endpoint, two runs — W warm-up requests then N/4, and W then N (scripts/load/send.mjs, 4 at a
# time) — and the difference of their instructions (all threads) over 3N/4 is the cost of one
# request. Instruction counts do not depend on what else the machine runs; the wall-clock
# figures of load-compare.sh do.
#
#   scripts/load-instructions.sh [--baseline REV] [--requests N] [--endpoints "..."]
#
# Needs valgrind (apt-get install valgrind) and node. The baseline binary is the one
# scripts/load-compare.sh builds and caches (run that first, or it is built here the same way).
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."

baseline=${LOAD_BASELINE:-HEAD~1}
requests=2000
warmup=200
endpoints="/patient /encounter /cht/patient /cht/encounter"
while (($#)); do
  case $1 in
    --baseline) baseline=$2; shift 2 ;;
    --requests) requests=$2; shift 2 ;;
    --endpoints) endpoints=$2; shift 2 ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "load-instructions.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v valgrind >/dev/null || { echo "load-instructions.sh: valgrind is needed" >&2; exit 2; }

cache=${CHT_FHIR_MEDIATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cht-fhir-mediator}
base_sha=$(git rev-parse --verify "$baseline^{commit}")
base_bin="$cache/load-baseline/$base_sha/cht-fhir-mediator"
[[ -x $base_bin ]] || LOAD_BASELINE=$base_sha scripts/load-compare.sh --seconds 1 --connections 1 --endpoints /patient >/dev/null
[[ ${LOAD_NO_BUILD:-} == 1 ]] || cargo build --release --locked --quiet
new_bin=target/release/cht-fhir-mediator

port=${LOAD_PORT:-6100}
upstream_port=${LOAD_UPSTREAM_PORT:-6190}
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf -- "$work"
}
trap cleanup EXIT
node scripts/load/fast-upstream.mjs "$upstream_port" >"$work/upstream.log" 2>&1 &
pids+=($!)
upstream="http://127.0.0.1:$upstream_port"
for _ in $(seq 50); do curl -fs "$upstream/metadata" >/dev/null && break; sleep 0.1; done

# Instructions of one mediator run under callgrind: start, W warm-up requests, N requests, stop.
run_once() { # binary endpoint n dir
  local bin=$1 path=$2 n=$3 out=$4
  mkdir -p "$out"
  PORT=$port HOST=127.0.0.1 OPENHIM_REGISTER=false LOG_LEVEL=warn FHIR_URL=$upstream CHT_URL=$upstream \
    DEAD_LETTER_DB="$out/dead-letters.sqlite3" valgrind --tool=callgrind --callgrind-out-file="$out/cg.out" \
    "$bin" serve >"$out/mediator.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 300); do curl -fs "http://127.0.0.1:$port/health/live" >/dev/null && break; sleep 0.2; done
  node scripts/load/send.mjs "http://127.0.0.1:$port" "$path" "$warmup" 4 w >/dev/null
  node scripts/load/send.mjs "http://127.0.0.1:$port" "$path" "$n" 4 m
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  awk '/^(totals|summary):/ {total = $2} END {print total + 0}' "$out/cg.out"
  rm -rf -- "$out"
}

# Per request: the difference between a run of N and a run of N/4 requests, over 3N/4 — what
# starting, warming up and stopping cost cancels out.
measure() { # label binary
  local label=$1 bin=$2 path small large
  for path in $endpoints; do
    small=$(run_once "$bin" "$path" $((requests / 4)) "$work/run")
    large=$(run_once "$bin" "$path" "$requests" "$work/run")
    awk -v l="$label" -v p="$path" -v s="$small" -v b="$large" -v n="$requests" \
      'BEGIN {printf "%s %s %.0f\n", l, p, (b - s) / (n - n / 4)}'
  done
}

echo "instructions per request (callgrind), $requests requests per endpoint after $warmup of warm-up; base $(git rev-parse --short "$base_sha"), new $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes')" >&2
measure base "$base_bin" >"$work/results"
measure new "$new_bin" >>"$work/results"
printf '| endpoint | instructions/request new | base | new/base |\n|---|---|---|---|\n'
for path in $endpoints; do
  n=$(awk -v p="$path" '$1 == "new" && $2 == p {print $3}' "$work/results")
  b=$(awk -v p="$path" '$1 == "base" && $2 == p {print $3}' "$work/results")
  printf '| `%s` | %s | %s | %s |\n' "$path" "$n" "$b" "$(awk -v a="$n" -v b="$b" 'BEGIN {printf "%.2f", a / b}')"
done
