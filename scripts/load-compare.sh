#!/usr/bin/env bash
# Side-by-side load comparison in ONE run: this tree's release build against a baseline commit's
# (built once into the cache, keyed by commit), on the same fast upstream
# (scripts/load/fast-upstream.mjs, which answers like a FHIR server at once), plus that upstream's
# own ceiling. Per endpoint and concurrency: requests/s, p50/p99, non-2xx, CPU per request of the
# mediator process (utime+stime from /proc), and each build's peak RSS (VmHWM); then the ratios.
#
#   scripts/load-compare.sh [--baseline REV] [--seconds N] [--connections "16 64"] [--endpoints "..."]
#
# Defaults: baseline HEAD~1 (LOAD_BASELINE), 10 s per run after a 2 s warm-up, c=16 and c=64,
# endpoints /patient /encounter /cht/patient /cht/encounter (a different document every request:
# the reference mediator's ready-made Patient and Encounter pushes, a cht-docs person push, a
# 3-answer pregnancy-visit report). The two builds run one after the other, never together; wrk,
# the upstream and the mediator share the machine's cores. Needs wrk (apt-get install wrk), node.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."

baseline=${LOAD_BASELINE:-HEAD~1}
seconds=10
warmup=2
connections="16 64"
endpoints="/patient /encounter /cht/patient /cht/encounter"
while (($#)); do
  case $1 in
    --baseline) baseline=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --endpoints) endpoints=$2; shift 2 ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "load-compare.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "load-compare.sh: wrk is needed (apt-get install wrk)" >&2; exit 2; }

cache=${CHT_FHIR_MEDIATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cht-fhir-mediator}
port=${LOAD_PORT:-6100}
upstream_port=${LOAD_UPSTREAM_PORT:-6190}
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  git worktree remove --force "$work/baseline-src" >/dev/null 2>&1 || true
  rm -rf -- "$work"
}
trap cleanup EXIT

# The baseline's binary, built once per commit (a release build takes minutes).
base_sha=$(git rev-parse --verify "$baseline^{commit}")
base_bin="$cache/load-baseline/$base_sha/cht-fhir-mediator"
if [[ ! -x $base_bin ]]; then
  echo "load-compare: building the baseline $base_sha (release, once; cached in $(dirname "$base_bin"))" >&2
  git worktree add --detach "$work/baseline-src" "$base_sha" >/dev/null
  mkdir -p "$(dirname "$base_bin")"
  (cd "$work/baseline-src" && CARGO_TARGET_DIR="$cache/load-baseline/target" cargo build --release --locked --quiet)
  cp "$cache/load-baseline/target/release/cht-fhir-mediator" "$base_bin"
fi
# LOAD_NO_BUILD=1: measure the release binary already built (e.g. while the sources are edited).
[[ ${LOAD_NO_BUILD:-} == 1 ]] || cargo build --release --locked --quiet
new_bin=target/release/cht-fhir-mediator

node scripts/load/fast-upstream.mjs "$upstream_port" >"$work/upstream.log" 2>&1 &
pids+=($!)
upstream="http://127.0.0.1:$upstream_port"
for _ in $(seq 50); do curl -fs "$upstream/metadata" >/dev/null && break; sleep 0.1; done

script_for() {
  case $1 in
    /patient) echo scripts/load/reference-patient.lua ;;
    /encounter) echo scripts/load/reference-encounter.lua ;;
    /cht/patient) echo scripts/load/patient.lua ;;
    /cht/encounter) echo scripts/load/encounter.lua ;;
    *) echo "load-compare.sh: no request script for $1" >&2; exit 2 ;;
  esac
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ticks_per_second=$(getconf CLK_TCK)

# One wrk run; prints "rps p50 p99 non2xx requests".
measure() { # url lua connections seconds
  local out="$work/wrk.txt"
  wrk -t2 -c"$3" -d"${4}s" --latency -s "$2" "$1" >"$out"
  awk '
    /Requests\/sec/ {rps = $2}
    $1 == "50%" {p50 = $2}
    $1 == "99%" {p99 = $2}
    /Non-2xx or 3xx responses/ {bad = $5}
    /requests in/ {n = $1}
    END {printf "%s %s %s %s %s\n", rps, p50, p99, (bad == "" ? 0 : bad), n}' "$out"
}

results="$work/results.txt"
run_build() { # label binary
  local label=$1 bin=$2
  PORT=$port HOST=127.0.0.1 OPENHIM_REGISTER=false LOG_LEVEL=warn FHIR_URL=$upstream CHT_URL=$upstream \
    DEAD_LETTER_DB="$work/$label-dead-letters.sqlite3" "$bin" serve >"$work/$label.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/health/live" >/dev/null && break; sleep 0.1; done
  local path c lua before after line
  for path in $endpoints; do
    lua=$(script_for "$path")
    for c in $connections; do
      measure "http://127.0.0.1:$port$path" "$lua" "$c" "$warmup" >/dev/null
      before=$(cpu_ticks "$pid")
      line=$(measure "http://127.0.0.1:$port$path" "$lua" "$c" "$seconds")
      after=$(cpu_ticks "$pid")
      # CPU seconds per 1,000 requests of the mediator process.
      echo "$label $path $c $line $(awk -v t=$((after - before)) -v hz="$ticks_per_second" -v n="${line##* }" \
        'BEGIN {printf "%.3f", (t / hz) / n * 1000}')" >>"$results"
    done
  done
  echo "$label rss $(awk '/VmHWM/ {print $2}' "/proc/$pid/status")" >>"$results"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

echo "load-compare: this tree ($(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes')) against $(git rev-parse --short "$base_sha"); ${seconds}s per run, c=${connections// /,}; $(nproc) cores shared with wrk and the upstream" >&2
ceiling=$(measure "$upstream/Patient/x" scripts/load/reference-patient.lua 16 "$seconds")
run_build base "$base_bin"
run_build new "$new_bin"

printf '\nfast upstream alone (GET, c=16): %s req/s\n\n' "${ceiling%% *}"
printf '| endpoint | c | req/s new | req/s base | new/base | p50 new | p99 new | p99 base | CPU s/1000 req new | base | non-2xx new/base |\n'
printf '|---|---|---|---|---|---|---|---|---|---|---|\n'
for path in $endpoints; do
  for c in $connections; do
    read -r _ _ _ nr np50 np99 nbad _ ncpu < <(grep "^new $path $c " "$results")
    read -r _ _ _ br _ bp99 bbad _ bcpu < <(grep "^base $path $c " "$results")
    printf '| `%s` | %s | %s | %s | %s× | %s | %s | %s | %s | %s | %s / %s |\n' "$path" "$c" "$nr" "$br" \
      "$(awk -v a="$nr" -v b="$br" 'BEGIN {printf "%.2f", a / b}')" "$np50" "$np99" "$bp99" "$ncpu" "$bcpu" "$nbad" "$bbad"
  done
done
printf '\npeak RSS: new %s kB, base %s kB\n' "$(awk '$1 == "new" && $2 == "rss" {print $3}' "$results")" \
  "$(awk '$1 == "base" && $2 == "rss" {print $3}' "$results")"
