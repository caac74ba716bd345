#!/usr/bin/env bash
# Installs the OAuth2 token server's library (@node-oauth/oauth2-server, pinned by
# scripts/stack/npm/oauth2-server-<version>/package-lock.json) into the cache on first use, the
# way scripts/stack.sh installs its services (same cache, lock and stamps), and prints the
# install dir. tests/fhir_auth.rs runs it, so the test needs nothing installed beforehand.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/../.."

OAUTH2_SERVER_VERSION=5.3.0
SUPPORT_DIR="$PWD/scripts/stack"
CACHE="${CHT_FHIR_MEDIATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cht-fhir-mediator}"
# shellcheck source=../../scripts/stack/lib/common.sh
source "$SUPPORT_DIR/lib/common.sh"
# shellcheck source=../../scripts/stack/lib/install.sh
source "$SUPPORT_DIR/lib/install.sh"

name="oauth2-server-$OAUTH2_SERVER_VERSION"
dir="$CACHE/$name"
require_cmds node npm sha256sum flock
lock_cache
stamp=$(npm_pinned_stamp "$name")
if ! install_done "$dir" "$stamp"; then
  log "@node-oauth/oauth2-server $OAUTH2_SERVER_VERSION: installing into $dir"
  npm_pinned_install "$name" "$dir"
  (cd "$dir" && node -e 'require("@node-oauth/oauth2-server")') ||
    die "@node-oauth/oauth2-server: the module does not load from $dir"
  printf '%s\n' "$stamp" >"$dir/.stack-installed"
fi
printf '%s\n' "$dir"
