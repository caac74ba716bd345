# shellcheck shell=bash
# pouchdb-server 4.2.0 (CouchDB protocol, in memory: its data is gone
# when it stops) with an admin and the databases medic and
# medic-sentinel.

stack_service couch 40
stack_port COUCH_PORT 5984
stack_setting COUCH_ADMIN_USER admin
stack_setting COUCH_ADMIN_PASSWORD pass

POUCHDB_SERVER_VERSION=4.2.0
POUCHDB_INSTALL_DIR="$CACHE/pouchdb-server-$POUCHDB_SERVER_VERSION"
POUCHDB_SERVER_DIR="$POUCHDB_INSTALL_DIR/node_modules/pouchdb-server"
COUCH_RUN_DIR="$RUN_DIR/couch"
COUCH_DATABASES=(medic medic-sentinel)

check_settings_couch() {
  [[ $COUCH_ADMIN_USER =~ ^[A-Za-z0-9_.-]+$ ]] ||
    die "COUCH_ADMIN_USER must be letters, digits, '_', '.' or '-', got '$COUCH_ADMIN_USER'"
  [[ -n $COUCH_ADMIN_PASSWORD && $COUCH_ADMIN_PASSWORD != *$'\n'* ]] ||
    die "COUCH_ADMIN_PASSWORD must be one non-empty line"
}

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

env_couch() {
  env_var STACK_COUCH_URL "$(couch_url)"
  env_var STACK_COUCH_USER "$COUCH_ADMIN_USER"
  env_var STACK_COUCH_PASSWORD "$COUCH_ADMIN_PASSWORD"
  env_var STACK_POUCHDB_SERVER_DIR "$POUCHDB_SERVER_DIR"
}
