#!/usr/bin/env bash
# Backfill throughput against the FHIR server's own ingest rate, on the running local stack
# (scripts/stack.sh up):
#   1. N generated CHT patients are bulk-loaded into the stack's CHT (couch);
#   2. for each bundle size, `cht-fhir-mediator backfill` (release build) writes them to FHIR
#      from the changes feed, timed;
#   3. the same Patients (converted once, offline) are POSTed straight to the FHIR server in
#      transaction Bundles of the same size, with the same concurrency, timed.
# The ratio backfill / direct shows what the mediator costs on top of the server.
#
#   scripts/backfill-bench.sh [patients=2000] [bundle sizes="25 100 250"] [concurrency=4]
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."

count=${1:-2000}
sizes=${2:-25 100 250}
concurrency=${3:-4}
# shellcheck disable=SC1090 # written by stack.sh up
source <(scripts/stack.sh env) || { echo "backfill-bench.sh: start the stack first (scripts/stack.sh up)" >&2; exit 2; }
cargo build --release --quiet
bin=$PWD/target/release/cht-fhir-mediator
work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT

for size in $sizes; do
  run="bb$size-$(date +%s)"
  # A fresh batch of patients for each size, so every run writes new resources.
  node scripts/load/generate.mjs "$STACK_CHT_URL" "$STACK_COUCH_USER" "$STACK_COUCH_PASSWORD" "$run" "$count" >"$work/$run.seq"
  since=$(cat "$work/$run.seq")
  start=$(date +%s.%N)
  DEAD_LETTER_DB="$work/$run.sqlite3" FHIR_URL=$STACK_FHIR_URL CHT_URL=$STACK_CHT_URL \
    CHT_USERNAME=$STACK_COUCH_USER CHT_PASSWORD=$STACK_COUCH_PASSWORD LOG_LEVEL=error \
    "$bin" backfill --since "$since" --bundle-size "$size" --concurrency "$concurrency" --batch 1000 >"$work/$run.out"
  backfill=$(echo "$(date +%s.%N) - $start" | bc)
  direct=$(node scripts/load/direct-ingest.mjs "$STACK_FHIR_URL" "$run-direct" "$count" "$size" "$concurrency")
  awk -v n="$count" -v s="$size" -v b="$backfill" -v d="$direct" 'BEGIN {
    printf "bundle %4d: backfill %6.0f patients/s (%.1f s)   direct to FHIR %6.0f patients/s (%.1f s)   ratio %3.0f%%\n",
      s, n / b, b, n / d, d, 100 * d / b }'
done
