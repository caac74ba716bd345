#!/usr/bin/env bash
# Build the HAPI FHIR JPA server launcher and the offline validator into a
# cache directory outside the repository.
#
#   install.sh <cache-dir>          build (idempotent; no network once installed)
#   install.sh --check <cache-dir>  exit 0 if <cache-dir> holds this exact build
#   install.sh --stamp              print the install stamp (HAPI version + hash
#                                   of this directory's sources)
#   install.sh --version            print the pinned HAPI FHIR version
#
# <cache-dir> is HAPI's own directory, e.g. ~/.cache/cht-fhir-mediator/hapi-8.8.0
# (a caller can name it after `install.sh --version`). It ends up holding:
#   maven-repo/          Maven's local repository (-Dmaven.repo.local), ~370 MB
#   app/hapi-launcher.jar + app/lib/*.jar   the runnable classpath, ~300 MB
#   app/server.jsa, app/validator.jsa       class data sharing archives, made by
#                        a training run of each (start the server once on an
#                        ephemeral port, validate one resource): faster starts
#   .stack-installed     the stamp, written last
#   .install.lock        flock(1) lock serialising concurrent installs
# A rebuild (sources changed) first tries Maven offline (-o), so it needs the
# network only when a dependency changed. The first install downloads ~370 MB
# from Maven Central.
#
# Environment: JAVA_HOME (Java 17+), MVN (default: mvn).
set -euo pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=env.sh
HAPI_ENV_NO_CHECK=1 . "$HERE/env.sh"
MVN=${MVN:-mvn}

log() { printf 'hapi install: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The stamp: HAPI version + sha256 over the launcher's sources (pom.xml,
# src/**, this script), so any change to them rebuilds.
stamp() {
  local h
  h=$(cd -- "$HERE" && find pom.xml install.sh env.sh src -type f -print0 | LC_ALL=C sort -z |
    xargs -0 sha256sum | sha256sum | cut -c1-16)
  printf 'hapi-fhir %s launcher %s\n' "$HAPI_VERSION" "$h"
}

installed() { # dir
  [[ -f $1/.stack-installed && -f $1/app/hapi-launcher.jar ]] &&
    [[ $(<"$1/.stack-installed") == "$(stamp)" ]]
}

case ${1:-} in
  --version) printf '%s\n' "$HAPI_VERSION"; exit 0 ;;
  --stamp) stamp; exit 0 ;;
  --check) [[ -n ${2:-} ]] || die "usage: install.sh --check <cache-dir>"; installed "$2"; exit ;;
  '' | -*) die "usage: install.sh <cache-dir> | --check <cache-dir> | --stamp | --version" ;;
esac

CACHE=$1
mkdir -p -- "$CACHE"
CACHE=$(cd -- "$CACHE" && pwd -P)
exec 9>"$CACHE/.install.lock"
flock 9

# Computed before building: a source edited during the build makes the next run rebuild.
STAMP=$(stamp)
# Class data sharing archives from one training run of each program (JDK 17:
# -XX:ArchiveClassesAtExit). Not fatal: without them the JVM starts slower.
make_archives() { # cache-dir
  local app=$1/app tmp pid url i profiles opts
  read -ra opts <<<"$HAPI_JAVA_OPTS"
  tmp=$(mktemp -d "$1/training.XXXXXX")
  : >"$tmp/out"
  log "class data sharing: training run of the server (a minute or two)"
  "$HAPI_JAVA" "${opts[@]}" -XX:ArchiveClassesAtExit="$app/server.jsa" -cp "$(hapi_classpath "$1")" \
    org.chtfhirmediator.hapi.HapiServer --port 0 --data-dir "$tmp/db" >"$tmp/out" 2>"$tmp/err" </dev/null &
  pid=$!
  # shellcheck disable=SC2064 # the pid is meant to be expanded now
  trap "kill -9 $pid 2>/dev/null || true" EXIT
  for ((i = 0; i < 600; i++)); do
    url=$(sed -n 's/^HAPI FHIR ready at \([^ ]*\).*/\1/p' "$tmp/out" || true)
    [[ -n $url ]] || ! kill -0 "$pid" 2>/dev/null && break
    sleep 1
  done
  if [[ -n $url ]]; then
    curl -fsS -o /dev/null "$url/Patient?_count=1" || true
  else
    log "warning: the training run did not start (no server archive): $(tail -n 3 "$tmp/err")"
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  trap - EXIT
  [[ -n $url ]] || rm -f -- "$app/server.jsa"
  log "class data sharing: training run of the validator"
  profiles="$HERE/../../../fhir-profiles"
  [[ -d $profiles ]] || profiles=$tmp
  printf '{"resourceType":"Patient","gender":"female"}\n' |
    "$HAPI_JAVA" "${opts[@]}" -XX:ArchiveClassesAtExit="$app/validator.jsa" -cp "$(hapi_classpath "$1")" \
      org.chtfhirmediator.hapi.ValidatorCli "$profiles" --stdin >/dev/null 2>"$tmp/err" || true
  [[ -f $app/validator.jsa ]] || log "warning: the validator's training run failed: $(tail -n 3 "$tmp/err")"
  rm -rf -- "$tmp"
}

if installed "$CACHE"; then
  log "HAPI FHIR $HAPI_VERSION: already installed in $CACHE"
  exit 0
fi

command -v "$MVN" >/dev/null || die "maven ($MVN) not found"
jv=$("$HAPI_JAVA" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
[[ ${jv%%.*} -ge 17 ]] 2>/dev/null || die "Java 17 or newer needed (found ${jv:-none})"

log "HAPI FHIR $HAPI_VERSION: building into $CACHE (first install: ~370 MB from Maven Central, several minutes)"
rm -f -- "$CACHE/.stack-installed"
rm -rf -- "$CACHE/build"
mvn_build() {
  "$MVN" -B -ntp -q "$@" -f "$HERE/pom.xml" \
    -Dmaven.repo.local="$CACHE/maven-repo" -DbuildDir="$CACHE/build" package
}
if [[ -d $CACHE/maven-repo ]] && mvn_build -o >"$CACHE/build.log" 2>&1; then
  log "built offline from $CACHE/maven-repo"
else
  rm -rf -- "$CACHE/build"
  mvn_build >"$CACHE/build.log" 2>&1 || { tail -n 40 "$CACHE/build.log" >&2; die "maven build failed (log: $CACHE/build.log)"; }
fi
[[ -f $CACHE/build/hapi-launcher.jar && -d $CACHE/build/lib ]] || die "maven did not produce build/hapi-launcher.jar and build/lib"

rm -rf -- "$CACHE/app"
mkdir -p -- "$CACHE/app"
mv -- "$CACHE/build/hapi-launcher.jar" "$CACHE/build/lib" "$CACHE/app/"
rm -rf -- "$CACHE/build"
make_archives "$CACHE"
printf '%s\n' "$STAMP" >"$CACHE/.stack-installed"
log "HAPI FHIR $HAPI_VERSION: installed in $CACHE ($(du -sh -- "$CACHE" | cut -f1))"
