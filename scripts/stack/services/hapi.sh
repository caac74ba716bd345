# shellcheck shell=bash
# HAPI FHIR JPA server 8.8.0 (R4, H2 file database) as HAPI's starter ships
# it: client ids ALPHANUMERIC, transactions on, request validation off. Built
# from Maven Central by scripts/stack/hapi/install.sh into the cache (first
# install ~3 min, ~870 MB); starts in 30-55 s, ~600 MB RSS. Needs no other
# service. Its data is kept in $STACK_RUN_DIR/hapi like hfs's: fresh for a
# new stack, kept by `restart hapi` and by `up hapi` beside running services.
# Base URL http://127.0.0.1:$HAPI_PORT/fhir.

stack_service hapi 40
stack_port HAPI_PORT 8091

HAPI_SCRIPTS="$SUPPORT_DIR/hapi"
HAPI_VERSION=$(sed -n 's:.*<hapi.version>\(.*\)</hapi.version>.*:\1:p' "$HAPI_SCRIPTS/pom.xml")
HAPI_INSTALL_DIR="$CACHE/hapi-$HAPI_VERSION"
# A cold JVM on a busy 2-core machine: allow more than the stack's default.
HAPI_START_TIMEOUT=180

hapi_installed() { "$HAPI_SCRIPTS/install.sh" --check "$HAPI_INSTALL_DIR"; }

install_hapi() {
  if hapi_installed; then
    log "hapi $HAPI_VERSION: already installed in $HAPI_INSTALL_DIR"
    return 0
  fi
  require_cmds java mvn
  log "hapi $HAPI_VERSION: installing into $HAPI_INSTALL_DIR (Maven: ~3 min and ~870 MB the first time)"
  "$HAPI_SCRIPTS/install.sh" "$HAPI_INSTALL_DIR" || die "hapi: install failed"
}

# hapi_start NAME PORT PROFILE...: one HAPI server as the service NAME, on its
# own data dir (fresh for a new stack), with start.sh's PROFILE and arguments.
hapi_start() { # name port profile...
  local name=$1 port=$2 data="$RUN_DIR/$1"
  shift 2
  if service_running "$name"; then
    log "$name: already running (pid $(service_pid "$name"))"
  else
    port_free_or_die "$name" "$port"
    # NEW_STACK: set by `up` (see hfs.sh).
    if ((NEW_STACK)) || [[ ! -d $data/db ]]; then
      log "$name: new database in $data"
      rm -rf -- "$data"
    else
      log "$name: starting on the existing database in $data"
    fi
    mkdir -p "$data"
    launch "$name" "$data" env HAPI_CACHE="$HAPI_INSTALL_DIR" "$HAPI_SCRIPTS/start.sh" "$port" "$data" "$@"
  fi
  local STACK_START_TIMEOUT=$((STACK_START_TIMEOUT > HAPI_START_TIMEOUT ? STACK_START_TIMEOUT : HAPI_START_TIMEOUT))
  wait_until "$name" "GET http://$BIND_HOST:$port/fhir/metadata answering 200" hapi_answers "$port"
  hapi_warm "$name" "$port"
}

# hapi_warm NAME PORT: HAPI answers /metadata long before it can serve a write
# in time: the first search of a type initialises Hibernate, and with
# validation on, the first write loads the validator and each code system and
# profile it meets (4.4 s for a first Patient, 1.4 s for a first Encounter on a
# busy 2-core machine: the mediator's first calls timed out at 5 s in CI). So
# before the stack says it is up: one search of each type the mediator writes,
# and a `$validate` (nothing is stored) of what the mediator writes, taken
# from the converter snapshots in tests/snapshots/.
HAPI_WARM_SNAPSHOTS=(persons_become_patients@hydrated_lineage reports_become_encounters_with_observations@pregnancy_home_visit
  reports_become_encounters_with_observations@referral reports_become_encounters_with_observations@interop_follow_up)
hapi_warm() { # name port
  local name=$1 base="http://$BIND_HOST:$2/fhir" type snap file status start=$SECONDS tmp
  for type in Patient Encounter Observation Task ServiceRequest Organization Endpoint; do
    http_status --max-time 60 "$base/$type?identifier=urn:warm-up|0" >/dev/null
  done
  tmp=$(mktemp -d)
  mkdir "$tmp/snapshots"
  for snap in "${HAPI_WARM_SNAPSHOTS[@]}"; do
    cp "$REPO_DIR/tests/snapshots/conversions__$snap.json.snap" "$tmp/snapshots/"
  done
  python3 "$HAPI_SCRIPTS/snapshots-to-json.py" "$tmp/snapshots" "$tmp/resources" 2>/dev/null
  for file in "$tmp"/resources/*.json; do
    type=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["resourceType"])' "$file")
    status=$(http_status --max-time 60 -X POST -H 'Content-Type: application/fhir+json' --data-binary "@$file" "$base/$type/\$validate")
    [[ $status == 200 || $status == 4* ]] || log "$name: warning: \$validate of $(basename "$file") answered $status"
  done
  rm -rf -- "$tmp"
  log "$name: warmed up (searches and \$validate of the mediator's resources) in $((SECONDS - start)) s"
}

hapi_answers() { # port
  [[ $(http_status "http://$BIND_HOST:$1/fhir/metadata") == 200 ]]
}

check_hapi() { hapi_answers "$HAPI_PORT"; }

start_hapi() { hapi_start hapi "$HAPI_PORT" default; }

env_hapi() {
  env_var STACK_HAPI_URL "http://$BIND_HOST:$HAPI_PORT/fhir"
}
