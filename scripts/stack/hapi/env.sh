# shellcheck shell=bash
# Sourced by start.sh, validate.sh and install.sh: where install.sh puts HAPI,
# the JVM and its options. HAPI_CACHE overrides the directory (the one given
# to install.sh); HAPI_JAVA_OPTS the JVM options.
_hapi_here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
HAPI_VERSION=$(sed -n 's:.*<hapi.version>\(.*\)</hapi.version>.*:\1:p' "$_hapi_here/pom.xml")
HAPI_CACHE=${HAPI_CACHE:-${CHT_FHIR_MEDIATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cht-fhir-mediator}/hapi-$HAPI_VERSION}
HAPI_JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java
# C1 only (TieredStopAtLevel=1): half the CPU time to start, for a test server.
# The archives install.sh made (class data sharing) cut the start again by ~25%.
HAPI_JAVA_OPTS=${HAPI_JAVA_OPTS:--Xmx768m -XX:+UseSerialGC -XX:TieredStopAtLevel=1}
hapi_classpath() { printf '%s' "$1/app/hapi-launcher.jar:$1/app/lib/*"; }
# hapi_exec ARCHIVE MAIN ARGS...: exec the JVM on HAPI_CACHE's classpath, with
# HAPI_JAVA_OPTS and the class data sharing archive app/ARCHIVE.jsa if present.
hapi_exec() {
  local jsa="$HAPI_CACHE/app/$1.jsa" main=$2 opts
  shift 2
  read -ra opts <<<"$HAPI_JAVA_OPTS"
  [[ -f $jsa ]] && opts+=("-XX:SharedArchiveFile=$jsa")
  exec "$HAPI_JAVA" "${opts[@]}" -cp "$(hapi_classpath "$HAPI_CACHE")" "org.chtfhirmediator.hapi.$main" "$@"
}
if [[ -z ${HAPI_ENV_NO_CHECK:-} ]] && ! "$_hapi_here/install.sh" --check "$HAPI_CACHE"; then
  printf '%s: HAPI FHIR %s is not installed in %s (or is out of date): run %s/install.sh %s\n' \
    "$(basename -- "$0")" "$HAPI_VERSION" "$HAPI_CACHE" "$_hapi_here" "$HAPI_CACHE" >&2
  exit 1
fi
