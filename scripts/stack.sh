#!/usr/bin/env bash
# Local test stack for cht-fhir-mediator: real peers, no Docker.
#
#   scripts/stack.sh install [service...]  install the peers into the cache (idempotent)
#   scripts/stack.sh up [service...]       start the stack, or only the services named
#                                     (installs first if needed)
#   scripts/stack.sh down [service...]     stop the stack, or only the services named
#   scripts/stack.sh restart [service...]  stop and start again, keeping the data a
#                                     service keeps on disk
#   scripts/stack.sh status           show which services are up (exit 3 if not all)
#   scripts/stack.sh env              print the env file of the running stack
#   scripts/stack.sh env-file         print the env file's path
#@verbs (the services' own commands, declared in their files)
#
# Services (started in this order, each in its own process group), one file
# each, scripts/stack/services/<name>.sh, whose header is shown here:
#@services (listed from scripts/stack/services/*.sh)
#
# A service may need others: `up`/`restart` of a service also starts what it
# needs and what needs it; `down` of a service also stops what needs it, not
# what it needs.
#
# Settings (environment):
#   CHT_FHIR_MEDIATOR_CACHE   install cache   (default ${XDG_CACHE_HOME:-$HOME/.cache}/cht-fhir-mediator)
#   STACK_RUN_DIR             pids/logs/tls/env/data (default ${TMPDIR:-/tmp}/cht-fhir-mediator-stack)
#   STACK_START_TIMEOUT=60 (seconds)
# and the services' own, with their defaults:
#@settings (listed from scripts/stack/services/*.sh)
# While any service runs, the services' settings are those it was started
# with, saved in $STACK_RUN_DIR/settings: `up <service>` or `status` from a
# shell without them (a test) uses the same ports; giving one another value
# then is an error (run `down` first).
#
# Everything listens on 127.0.0.1 only.
#
# To add a service: write scripts/stack/services/<name>.sh (the core finds it).
# Its header comment (second line to the first blank line) is its help, the
# first line a one-line description. At its top it declares:
#   stack_service <name> <order>   its place in the start order (lower first;
#                                  stopped in reverse)
#   stack_needs <other>...         services it cannot run without
#   stack_port VAR DEFAULT, stack_setting VAR DEFAULT   its settings
#   stack_verb VERB FUNCTION USAGE a command of its own (optional)
# and it defines:
#   start_<name>   start it unless running (launch: own process group), then
#                  wait_until check_<name> succeeds
#   check_<name>   true when it answers
#   env_<name>     its lines of the env file (env_var STACK_... value)
# and when needed: install_<name> + <name>_installed (its install into the
# cache, stamped; lib/install.sh), prepare_<name> (run by `up` before any
# service starts), stop_<name> (default: stop its process group),
# check_settings_<name> (validate its settings), <name>_broken (true when it
# cannot come up: wait_until gives up early).

# shellcheck source-path=SCRIPTDIR/stack
set -euo pipefail
# No job control (a script never has it, unless run as `bash -m`): launch()
# relies on background children staying in this script's process group.
set +m

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
STACK_SCRIPT="$SCRIPT_DIR/$(basename -- "${BASH_SOURCE[0]}")"
SUPPORT_DIR="$SCRIPT_DIR/stack"
# shellcheck disable=SC2034 # used by the service files
REPO_DIR=$(cd -- "$SCRIPT_DIR/.." && pwd -P)

source "$SUPPORT_DIR/lib/common.sh"
source "$SUPPORT_DIR/lib/services.sh"
source "$SUPPORT_DIR/lib/settings.sh"
source "$SUPPORT_DIR/lib/processes.sh"
source "$SUPPORT_DIR/lib/install.sh"
source "$SUPPORT_DIR/lib/tls.sh"
# The services: one file each, read at the top level (what it assigns is
# global), in any order (the start order is declared in them).
for _file in "$SUPPORT_DIR"/services/*.sh; do
  DECLARING=
  # shellcheck source=/dev/null
  source "$_file"
  service_loaded "$_file"
done
unset _file
services_init

# Set by `up`: 1 when it starts a new stack (nothing of it running, not a
# restart): a service keeping data on disk then starts afresh.
# shellcheck disable=SC2034 # used by the service files
NEW_STACK=0

cmd_install() { # [service...]
  want_services "$@"
  install_wanted
}

cmd_up() { # [service...]
  lock_run_dir
  load_settings
  want_services "$@"
  up_wanted 0
}

# Start the services in WANT, in start order. keep_data=1 (restart): a
# service keeping data on disk starts on it even when nothing else runs.
up_wanted() { # keep_data
  require_cmds node npm tar sha256sum flock setsid openssl curl
  check_settings
  # A service starts with what it needs and with what needs it (see the header).
  want_related needed dependents
  NEW_STACK=0
  if (($1 == 0)) && ! any_running; then
    # shellcheck disable=SC2034 # used by the service files
    NEW_STACK=1
  fi
  local name
  for name in "${SERVICES[@]}"; do
    if wanted "$name" && has_install "$name" && ! "${name}_installed" && service_running "$name"; then
      log "$name: its install in $CACHE is out of date: stopping it to redo it"
      stop_service "$name"
    fi
  done
  install_wanted
  for name in "${SERVICES[@]}"; do
    if wanted "$name" && declare -F "prepare_$name" >/dev/null; then "prepare_$name"; fi
  done
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
  # A service cannot outlive one it needs (but the one needed stays).
  want_related dependents
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
  check_settings
  # What needs a restarted service restarts too (cht on a new, empty couch would
  # serve without its databases).
  want_related dependents
  stop_wanted
  up_wanted 1
}

cmd_status() {
  load_settings
  local name all_up=1
  for name in "${SERVICES[@]}"; do
    if service_running "$name"; then
      if "check_$name"; then
        printf '%-10s up (pid %s)\n' "$name" "$(service_pid "$name")"
      else
        printf '%-10s running but not answering (pid %s, log %s)\n' "$name" "$(service_pid "$name")" "$(log_file "$name")"
        all_up=0
      fi
    else
      printf '%-10s down\n' "$name"
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

# The header above, with the lists the service files declare.
usage() {
  local line
  while IFS= read -r line; do
    case $line in
      '#@verbs'*) verbs_help ;;
      '#@services'*) services_help ;;
      '#@settings'*) settings_help ;;
      *)
        line=${line#\#}
        printf '%s\n' "${line# }"
        ;;
    esac
  done < <(sed -n '2,/^$/{/^#/p;}' "$STACK_SCRIPT")
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
    -h | --help | help) usage ;;
    *)
      if [[ -n $cmd && -n ${VERB_FUNCTION[$cmd]:-} ]]; then
        "${VERB_FUNCTION[$cmd]}" "$@"
      else
        usage >&2
        exit 2
      fi
      ;;
  esac
}

main "$@"
