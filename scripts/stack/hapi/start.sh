#!/usr/bin/env bash
# Run the HAPI FHIR JPA server (R4) built by install.sh, in the foreground
# (exec: the caller's $! is the JVM's PID). Base URL http://127.0.0.1:PORT/fhir;
# "HAPI FHIR ready at ..." on stdout when it answers; logs on stderr.
#
#   start.sh PORT DATA_DIR [PROFILE [PROFILES_DIR]] [-- LAUNCHER_ARGS...]
#
# PROFILE:
#   default        HAPI's defaults: client ids ALPHANUMERIC, request validation off
#   no-client-ids  client_id_strategy NOT_ALLOWED (every PUT of a new id refused)
#   validate       request validation ON (errors refuse the write) against base R4
#                  plus every *.json in PROFILES_DIR (default: the repo's fhir-profiles/),
#                  stored into the server at start
# LAUNCHER_ARGS: --subscriptions (rest-hook Subscriptions), --retry-version-conflicts
#   (honour X-Retry-On-Version-Conflict), --db-pool N (default 10),
#   --client-id-strategy ALPHANUMERIC|NOT_ALLOWED|ANY, --validate-profiles DIR.
# DATA_DIR holds the H2 database (DATA_DIR/db/hapi.mv.db); an existing one is
# reused, delete the directory for a fresh server.
#
# Environment: HAPI_CACHE (install dir, see env.sh), HAPI_JAVA_OPTS (default
# "-Xmx768m -XX:+UseSerialGC -XX:TieredStopAtLevel=1"), JAVA_HOME.
set -euo pipefail
HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=env.sh
. "$HERE/env.sh"

usage() { sed -n '6,8p' "$0" >&2; exit 2; }
[[ $# -ge 2 ]] || usage
port=$1 data=$2
shift 2
args=()
profile=default
if [[ $# -gt 0 && $1 != -- ]]; then profile=$1; shift; fi
case $profile in
  default) ;;
  no-client-ids) args+=(--client-id-strategy NOT_ALLOWED) ;;
  validate)
    dir="$HERE/../../../fhir-profiles"
    if [[ $# -gt 0 && $1 != -- ]]; then dir=$1; shift; fi
    [[ -d $dir ]] || { echo "start.sh: no profiles directory $dir" >&2; exit 2; }
    args+=(--validate-profiles "$(cd -- "$dir" && pwd -P)") ;;
  *) usage ;;
esac
if [[ $# -gt 0 ]]; then [[ $1 == -- ]] || usage; shift; args+=("$@"); fi
mkdir -p -- "$data"
data=$(cd -- "$data" && pwd -P)

hapi_exec server HapiServer --port "$port" --data-dir "$data/db" "${args[@]}"
