#!/usr/bin/env bash
# HL7's validator (HAPI's, scripts/stack/hapi; offline) on the profiles of fhir-profiles/:
#  (a) each conformance resource of fhir-profiles/ itself,
#  (b) the resources of tests/snapshots/*.snap (the converter's output) against base R4 + the profiles,
#  (c) tests/fixtures/fhir-profiles/*.json: each must give the errors expected-errors.json lists
#      (message fragments), the valid-* ones none.
# Fails on any error in (a) or (b) or any unmet expectation in (c); prints every warning.
# With --compare, also generates the snapshots with HAPI's SnapshotGeneratingValidationSupport
# from differential-only copies and lists what differs from snapshots.sh's (hapi-compare.mjs).
#
#   scripts/fhir-profiles/verify.sh [--compare]
# Needs HAPI installed: scripts/stack/hapi/install.sh (see scripts/stack/hapi/README.md).
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD

compare=false
[[ ${1:-} == --compare ]] && compare=true

R4=$(scripts/r4-model/definitions.sh)
CACHE=${CHT_FHIR_MEDIATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cht-fhir-mediator}
# The validator's user.home: its FHIR package cache holds the core package (core-package.mjs).
VALIDATOR_HOME="$CACHE/fhir-validator-home"
if [[ ! -f $VALIDATOR_HOME/.fhir/packages/.core-4.0.1-from-${R4//\//_} ]]; then
  rm -rf -- "$VALIDATOR_HOME"
  node scripts/fhir-profiles/core-package.mjs "$R4" "$VALIDATOR_HOME/.fhir/packages"
  touch "$VALIDATOR_HOME/.fhir/packages/.core-4.0.1-from-${R4//\//_}"
fi

work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT
python3 scripts/stack/hapi/snapshots-to-json.py tests/snapshots "$work/snapshots" 2>/dev/null
fixtures=()
for f in tests/fixtures/fhir-profiles/*.json; do
  [[ ${f##*/} == expected-errors.json ]] || fixtures+=("$f")
done
opts=${HAPI_JAVA_OPTS:--Xmx768m -XX:+UseSerialGC -XX:TieredStopAtLevel=1}
HAPI_JAVA_OPTS="$opts -Duser.home=$VALIDATOR_HOME" scripts/stack/hapi/validate.sh fhir-profiles \
  fhir-profiles "$work/snapshots" "${fixtures[@]}" >"$work/answers.jsonl" 2>"$work/validator.log" || true
[[ -s $work/answers.jsonl ]] || { cat "$work/validator.log" >&2; echo "verify: the validator gave no answer" >&2; exit 1; }
status=0
node scripts/fhir-profiles/verify.mjs "$work/answers.jsonl" "$work/snapshots" tests/fixtures/fhir-profiles/expected-errors.json || status=1

if $compare; then
  # shellcheck source=/dev/null # scripts/stack/hapi/env.sh
  . scripts/stack/hapi/env.sh
  mkdir -p "$work/differential-only"
  for f in fhir-profiles/*.json; do
    node -e 'const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      if (d.resourceType === "StructureDefinition") { delete d.snapshot; delete d.mapping; }
      process.stdout.write(JSON.stringify(d, null, 2));' "$f" >"$work/differential-only/${f##*/}"
  done
  # shellcheck disable=SC2086 # the options are words
  (cd "$work" && "$HAPI_JAVA" $opts -cp "$(hapi_classpath "$HAPI_CACHE")" "$ROOT/scripts/fhir-profiles/HapiSnapshots.java" \
    differential-only hapi Patient Task Observation Encounter Extension Identifier CodeableConcept Coding \
    Reference HumanName ContactPoint Period 2>"$work/hapi.log") || { cat "$work/hapi.log" >&2; exit 1; }
  echo "== snapshots.sh's snapshots vs HAPI's (SnapshotGeneratingValidationSupport), each against its own R4 core"
  node scripts/fhir-profiles/hapi-compare.mjs "$R4" fhir-profiles "$work/hapi"
fi
exit $status
