# shellcheck shell=bash
# CongoDB: the in-memory MongoDB-wire server of @push.rocks/smartmongo.
# It holds OpenHIM's whole state, in memory: gone when it stops.

stack_service congo 10
stack_port CONGO_PORT 27017

SMARTMONGO_VERSION=2.2.0
# sha256 of the registry tarball of @push.rocks/smartmongo@2.2.0 (npm pack).
SMARTMONGO_TGZ_SHA256=1f9915eb73859a62183e589a699f58b9fd006c972deb5ce6f61fa945defbc22e
SMARTMONGO_INSTALL_DIR="$CACHE/smartmongo-$SMARTMONGO_VERSION"
SMARTMONGO_PKG_DIR="$SMARTMONGO_INSTALL_DIR/package"

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
    # scripts/stack/congo.mjs: the server, with the command-name alias the
    # MongoDB driver of openhim-core 4.0.5 needs.
    launch congo "$RUN_DIR" node "$SUPPORT_DIR/congo.mjs" \
      --smartmongo "$SMARTMONGO_PKG_DIR" --host "$BIND_HOST" --port "$CONGO_PORT"
  fi
  wait_until congo "mongodb port $CONGO_PORT open" check_congo
}

env_congo() {
  env_var STACK_MONGO_URL_BASE "mongodb://$BIND_HOST:$CONGO_PORT"
}
