# shellcheck shell=bash
# Installs into the cache (sourced by scripts/stack.sh): the cache lock, the
# install stamps, and the pinned npm trees several services install.
#
# The cache dirs and stamps are shared by every checkout on a machine (CI runs
# reuse them): changing how a stamp is computed redoes every install.

# Bump when an install_* function changes what it does to its directory, so
# caches made by the old steps are redone.
INSTALL_REVISION=1

# Serialise concurrent runs (two CI jobs, two terminals). The lock fd 8 is
# closed in every started service (see launch), otherwise a long-running
# child would hold the lock for ever.
lock_cache() {
  mkdir -p "$CACHE"
  exec 8>"$CACHE/.install.lock"
  flock 8
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

# Install the wanted services that have an install step, in start order.
install_wanted() {
  require_cmds node npm tar sha256sum flock
  lock_cache
  local name
  for name in "${SERVICES[@]}"; do
    if ! wanted "$name" || ! has_install "$name"; then continue; fi
    # Re-installing deletes the directory the running service was started from.
    if ! "${name}_installed" && service_running "$name"; then
      die "the install of $name in $CACHE must be redone but $name is running: run '$STACK_SCRIPT down $name' first"
    fi
    "install_$name"
  done
}

has_install() { declare -F "install_$1" >/dev/null; }
