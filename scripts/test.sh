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
cargo test --all-targets "$@"
# The stand-in's tests use their own uniquely named databases on the stack's couch.
COUCH_URL=$STACK_COUCH_URL COUCH_USER=$STACK_COUCH_USER COUCH_PASSWORD=$STACK_COUCH_PASSWORD \
  node --test tests/cht-standin/test/
