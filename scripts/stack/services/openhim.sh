# shellcheck shell=bash
# openhim-core 4.0.5 (API on HTTPS with a cert from a local test CA, or with
# OPENHIM_CERT=default its own bundled "OpenHIM Default Certificate" as a fresh
# install serves it; it also uses the ports API+1..API+6, see
# stack/openhim-config.mjs).
# It needs congo, where its whole state lives: `up`/`restart` of
# either also starts the other, and `down congo` also stops openhim.

stack_service openhim 20
stack_needs congo
stack_port OPENHIM_API_PORT 8080
stack_port OPENHIM_ROUTER_HTTP_PORT 5001
stack_port OPENHIM_ROUTER_HTTPS_PORT 5000
stack_setting OPENHIM_DB openhim
# test-ca: a certificate for 127.0.0.1 from the stack's own CA; default: the
# core's bundled self-signed one (CN=localhost, CA:TRUE, no SAN), which the
# mediator trusts only pinned (its file is then STACK_CA_BUNDLE).
stack_setting OPENHIM_CERT test-ca
stack_verb openhim-config openhim_config_cmd \
  "  scripts/stack.sh openhim-config [--api-port N] [--router-http-port N]
                   [--router-https-port N] [--db NAME] [--mongo-port N]
                   [--default-cert]
                                    print an OpenHIM core config (JSON)"
stack_verb api openhim_api_cmd \
  "  scripts/stack.sh api METHOD PATH [JSON]
                                    call the running core's API (token auth,
                                    root@openhim.org), e.g. api GET /mediators"

OPENHIM_VERSION=4.0.5
OPENHIM_INSTALL_DIR="$CACHE/openhim-core-$OPENHIM_VERSION"
OPENHIM_CORE_DIR="$OPENHIM_INSTALL_DIR/node_modules/openhim-core"
OPENHIM_CONF="$RUN_DIR/openhim/config.json"
OPENHIM_DEFAULT_CERT="$OPENHIM_CORE_DIR/resources/certs/default/cert.pem"

check_settings_openhim() {
  [[ $OPENHIM_DB =~ ^[A-Za-z0-9_-]+$ ]] || die "OPENHIM_DB must be letters, digits, '_' or '-', got '$OPENHIM_DB'"
  [[ $OPENHIM_CERT == test-ca || $OPENHIM_CERT == default ]] || die "OPENHIM_CERT must be test-ca or default, got '$OPENHIM_CERT'"
}

# The certificate clients must trust, and the host name it is valid for.
openhim_trust_file() { if [[ $OPENHIM_CERT == default ]]; then printf '%s\n' "$OPENHIM_DEFAULT_CERT"; else printf '%s\n' "$TLS_DIR/ca.pem"; fi; }
openhim_api_host() { if [[ $OPENHIM_CERT == default ]]; then printf 'localhost\n'; else printf '%s\n' "$BIND_HOST"; fi; }

openhim_installed() {
  install_done "$OPENHIM_INSTALL_DIR" "$(npm_pinned_stamp "openhim-core-$OPENHIM_VERSION")"
}

install_openhim() {
  local dir=$OPENHIM_INSTALL_DIR
  if openhim_installed; then
    log "openhim-core $OPENHIM_VERSION: already installed in $dir"
    return 0
  fi
  log "openhim-core $OPENHIM_VERSION: installing into $dir (10-40 s)"
  npm_pinned_install "openhim-core-$OPENHIM_VERSION" "$dir"
  [[ -f $OPENHIM_CORE_DIR/lib/server.js && -f $OPENHIM_CORE_DIR/config/default.json ]] ||
    die "openhim-core: install incomplete in $dir"
  # The core loads ssl-root-cas/latest, which tries to download Mozilla's CA
  # list at every start when ssl-root-cas-latest.js is missing (no network
  # here: a failed DNS lookup and log noise) and then falls back to the bundled
  # list. Provide that fallback as the "latest" file: same CAs, no download.
  local rootcas="$dir/node_modules/ssl-root-cas"
  [[ -f $rootcas/ssl-root-cas.js ]] || die "openhim-core: $rootcas/ssl-root-cas.js missing"
  printf "'use strict';\nmodule.exports = require('./ssl-root-cas');\n" >"$rootcas/ssl-root-cas-latest.js"
  npm_pinned_stamp "openhim-core-$OPENHIM_VERSION" >"$dir/.stack-installed"
}

# Print an OpenHIM core config (see scripts/stack/openhim-config.mjs).
openhim_config() { # api-port router-http-port router-https-port db mongo-port cert(test-ca|default)
  local cert=(--cert-path "$TLS_DIR/server-cert.pem" --key-path "$TLS_DIR/server-key.pem")
  [[ $6 == default ]] && cert=(--default-cert)
  node "$SUPPORT_DIR/openhim-config.mjs" \
    --core-dir "$OPENHIM_CORE_DIR" \
    --api-port "$1" --router-http-port "$2" --router-https-port "$3" \
    --db "$4" --mongo-host "$BIND_HOST" --mongo-port "$5" \
    "${cert[@]}" --bind-address "$BIND_HOST"
}

# Before any service starts: the test certificates, and no core that cannot
# go on.
prepare_openhim() {
  ensure_tls
  if ! service_running congo; then
    # CongoDB holds OpenHIM's whole state in memory: a core left running
    # after its database went away must start again on the new one (this is
    # also what makes `restart congo` restart openhim).
    stop_service openhim
    stop_service congo
  elif ((TLS_REGENERATED)); then
    stop_service openhim
  fi
}

# The core's master process respawns a crashing worker for ever: three dead
# workers mean it will not come up (a bad certificate or key, a DB error).
openhim_broken() {
  local died
  died=$(grep -c 'worker [0-9]* died' "$(log_file openhim)" 2>/dev/null) || true
  ((${died:-0} >= 3))
}

check_openhim() {
  # The default certificate names localhost (curl trusts it as its own anchor there).
  curl -fsS -o /dev/null --max-time 5 --cacert "$(openhim_trust_file)" \
    --resolve "localhost:$OPENHIM_API_PORT:$BIND_HOST" \
    "https://$(openhim_api_host):$OPENHIM_API_PORT/heartbeat" 2>/dev/null
}

start_openhim() {
  if service_running openhim; then
    log "openhim: already running (pid $(service_pid openhim))"
  else
    local p
    for p in "$OPENHIM_API_PORT" "$OPENHIM_ROUTER_HTTP_PORT" "$OPENHIM_ROUTER_HTTPS_PORT" \
      $((OPENHIM_API_PORT + 1)) $((OPENHIM_API_PORT + 2)) $((OPENHIM_API_PORT + 3)); do
      port_free_or_die openhim "$p"
    done
    mkdir -p "$(dirname -- "$OPENHIM_CONF")"
    openhim_config "$OPENHIM_API_PORT" "$OPENHIM_ROUTER_HTTP_PORT" "$OPENHIM_ROUTER_HTTPS_PORT" \
      "$OPENHIM_DB" "$CONGO_PORT" "$OPENHIM_CERT" >"$OPENHIM_CONF.tmp"
    mv -- "$OPENHIM_CONF.tmp" "$OPENHIM_CONF"
    # A clean environment: the core's config (nconf) is overridden by any
    # environment variable named like a config path with '_' separators (e.g.
    # mongo_url), and NODE_ENV=test/development would merge the package's
    # config/test.json or development.json.
    launch openhim "$OPENHIM_CORE_DIR" env -i PATH="$PATH" HOME="$HOME" \
      node lib/server.js --conf="$OPENHIM_CONF"
  fi
  wait_until openhim "GET https://$(openhim_api_host):$OPENHIM_API_PORT/heartbeat answering" check_openhim
}

env_openhim() {
  env_var STACK_OPENHIM_API_URL "https://$(openhim_api_host):$OPENHIM_API_PORT"
  env_var STACK_OPENHIM_ROUTER_URL "http://$BIND_HOST:$OPENHIM_ROUTER_HTTP_PORT"
  env_var STACK_CA_BUNDLE "$(openhim_trust_file)"
  env_var STACK_OPENHIM_CORE_DIR "$OPENHIM_CORE_DIR"
  env_var STACK_OPENHIM_DEFAULT_CERT "$OPENHIM_DEFAULT_CERT"
}

# ---------------------------------------------------------------- its commands

openhim_config_cmd() { # [--api-port N] [--router-http-port N] [--router-https-port N] [--db NAME] [--mongo-port N] [--default-cert]
  local api=$OPENHIM_API_PORT http=$OPENHIM_ROUTER_HTTP_PORT https=$OPENHIM_ROUTER_HTTPS_PORT
  local db=$OPENHIM_DB mongo=$CONGO_PORT cert=$OPENHIM_CERT
  while (($#)); do
    case $1 in
      --default-cert) cert=default; shift; continue ;;
      --api-port) api=${2:?--api-port needs a value} ;;
      --router-http-port) http=${2:?--router-http-port needs a value} ;;
      --router-https-port) https=${2:?--router-https-port needs a value} ;;
      --db) db=${2:?--db needs a value} ;;
      --mongo-port) mongo=${2:?--mongo-port needs a value} ;;
      *) die "openhim-config: unknown option '$1'" ;;
    esac
    shift 2
  done
  require_cmds node
  openhim_config "$api" "$http" "$https" "$db" "$mongo" "$cert"
}

openhim_api_cmd() { # METHOD PATH [JSON]
  (($# >= 2)) || die "usage: $STACK_SCRIPT api METHOD PATH [JSON-BODY]"
  [[ -f $ENV_FILE ]] || die "the stack is not up (no $ENV_FILE)"
  (
    # shellcheck source=/dev/null
    source "$ENV_FILE"
    node "$SUPPORT_DIR/openhim-api.mjs" "$@"
  )
}
