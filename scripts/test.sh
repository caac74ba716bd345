#!/usr/bin/env bash
# The test command: starts the real local stack (installing it into the cache on first use),
# runs every test — unit, integration and real-stack, then the CHT stand-in's own node tests —
# and stops the stack again if this script started it. Extra arguments go to `cargo test`
# (e.g. `scripts/test.sh --test openhim_real`).
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."

started_here=false
if ! scripts/stack.sh status >/dev/null 2>&1; then
  scripts/stack.sh up
  started_here=true
fi
stop_stack() { if $started_here; then scripts/stack.sh down; fi; }
trap stop_stack EXIT

# shellcheck disable=SC1090 # the env file is written by `stack.sh up`
source <(scripts/stack.sh env)
# The base R4 model compiled into the binary is what the official definitions give, and the
# profiles' snapshots are what their differentials and those definitions give.
scripts/r4-model/generate.sh --check
scripts/fhir-profiles/snapshots.sh --check
# HL7's validator (HAPI's, offline) on the profiles, on every resource of the converter corpus
# (tests/snapshots) against base R4 and the profiles — zero errors — and on the negative fixtures,
# which must give their expected errors (tests/validator_agreement.rs checks ours agrees).
scripts/fhir-profiles/verify.sh
cargo test --all-targets "$@"
# The FHIR contract suites again with server-assigned ids (conditional writes): HFS supports both
# write modes, so both are exercised on a real server (the first run used `auto`: client ids).
TEST_FHIR_WRITE_MODE=conditional cargo test "$@" --test fhir_real --test outbound_real --test ltfu_e2e \
  --test reference_real --test backfill_real --test crash_real
# The FHIR contract suites on HAPI FHIR 8.8.0 (the stack's `hapi` and `hapistrict`): as its starter
# ships it, in `auto` (HAPI declares no updateCreate: conditional writes) and with the mediator's
# client ids (allowed there); then strict — no client ids, every request validated against
# fhir-profiles/ — where only conditional writes can work.
HAPI_SUITES=(--test fhir_real --test outbound_real --test ltfu_e2e --test reference_real)
TEST_FHIR_SERVER=hapi cargo test "$@" "${HAPI_SUITES[@]}"
TEST_FHIR_SERVER=hapi TEST_FHIR_WRITE_MODE=client-ids cargo test "$@" "${HAPI_SUITES[@]}"
TEST_FHIR_SERVER=hapistrict cargo test "$@" "${HAPI_SUITES[@]}"
# The stand-in's tests use their own uniquely named databases on the stack's couch.
COUCH_URL=$STACK_COUCH_URL COUCH_USER=$STACK_COUCH_USER COUCH_PASSWORD=$STACK_COUCH_PASSWORD \
  node --test tests/cht-standin/test/
