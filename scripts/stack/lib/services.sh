# shellcheck shell=bash
# The service registry (sourced by scripts/stack.sh): what the files
# scripts/stack/services/<name>.sh declare (see "To add a service" in
# scripts/stack.sh), the start order, and which services a command works on.

declare -A SERVICE_ORDER=() SERVICE_NEEDS=() SERVICE_FILE=()
declare -A VERB_FUNCTION=() VERB_USAGE=() VERB_SERVICE=()
# The services' own commands, in declaration order.
VERBS=()
# Start order (from the declared orders); stopped in reverse.
SERVICES=()
# The service whose file is being read (set by stack_service).
DECLARING=

# After a service file was sourced (by scripts/stack.sh, at the top level so
# that what it assigns is global): it declared one service, named like it.
service_loaded() { # file
  [[ -n $DECLARING ]] || die "$1 declares no service (stack_service NAME ORDER)"
  [[ $(basename -- "$1" .sh) == "$DECLARING" ]] || die "$1 declares service '$DECLARING': the file must be named $DECLARING.sh"
  SERVICE_FILE[$DECLARING]=$1
}

# The service being declared, for the declarations after stack_service.
declaring() { # what
  [[ -n $DECLARING ]] || die "$1: no stack_service before it"
}

# stack_service NAME ORDER: the service this file declares; ORDER is its
# place in the start order (lower first).
stack_service() { # name order
  [[ $1 =~ ^[a-z][a-z0-9]*$ ]] || die "service name '$1': lower-case letters and digits only"
  [[ $2 =~ ^[0-9]+$ ]] || die "service $1: start order '$2' is not a number"
  [[ -z ${SERVICE_ORDER[$1]:-} ]] || die "service $1 declared twice"
  [[ -z $DECLARING ]] || die "stack_service $1: $DECLARING is declared in the same file"
  SERVICE_ORDER[$1]=$2
  DECLARING=$1
}

# stack_needs OTHER...: the service being declared cannot run without OTHER.
# `up`/`restart` of either starts both; `down OTHER` also stops this one.
stack_needs() { # other...
  declaring stack_needs
  SERVICE_NEEDS[$DECLARING]+=" $*"
}

# stack_verb VERB FUNCTION USAGE: a command of the service being declared
# (scripts/stack.sh VERB args... runs FUNCTION args...); USAGE is its help.
stack_verb() { # verb function usage
  declaring "stack_verb $1"
  [[ -z ${VERB_FUNCTION[$1]:-} ]] || die "command $1 declared twice"
  VERBS+=("$1")
  VERB_FUNCTION[$1]=$2
  VERB_USAGE[$1]=$3
  VERB_SERVICE[$1]=$DECLARING
}

# Once every file is read: the start order, the settings list, and a check
# that each service has what the core calls.
services_init() {
  local name other fn
  mapfile -t SERVICES < <(
    for name in "${!SERVICE_ORDER[@]}"; do printf '%s %s\n' "${SERVICE_ORDER[$name]}" "$name"; done |
      sort -k1,1n -k2,2 | cut -d' ' -f2
  )
  ((${#SERVICES[@]})) || die "no service in $SUPPORT_DIR/services"
  for name in "${SERVICES[@]}"; do
    for fn in "start_$name" "check_$name" "env_$name"; do
      declare -F "$fn" >/dev/null || die "${SERVICE_FILE[$name]}: no function $fn"
    done
    if has_install "$name" && ! declare -F "${name}_installed" >/dev/null; then
      die "${SERVICE_FILE[$name]}: install_$name without ${name}_installed"
    fi
    for other in ${SERVICE_NEEDS[$name]:-}; do
      is_service "$other" || die "${SERVICE_FILE[$name]}: needs unknown service '$other'"
    done
    # shellcheck disable=SC2206 # the list is space-separated variable names
    SETTINGS_VARS+=(${SERVICE_SETTINGS[$name]:-})
  done
}

is_service() { # name
  [[ -n $1 && -n ${SERVICE_ORDER[$1]:-} ]]
}

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

wanted() { [[ -n ${WANT[$1]:-} ]]; }

# Add to WANT, until nothing changes, the services related to a wanted one:
# "needed" adds what a wanted service needs, "dependents" adds the services
# that need a wanted one.
want_related() { # needed|dependents...
  local mode modes=" $* " changed=1 name other
  for mode in "$@"; do
    [[ $mode == needed || $mode == dependents ]] || die "want_related: unknown mode '$mode'"
  done
  while ((changed)); do
    changed=0
    for name in "${SERVICES[@]}"; do
      for other in ${SERVICE_NEEDS[$name]:-}; do
        if [[ $modes == *" needed "* ]] && wanted "$name" && ! wanted "$other"; then
          WANT[$other]=1
          changed=1
        fi
        if [[ $modes == *" dependents "* ]] && wanted "$other" && ! wanted "$name"; then
          WANT[$name]=1
          changed=1
        fi
      done
    done
  done
}

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

# The help's list of services: each file's header (from its second line to
# the first blank one; the first line of it is the one-line description).
services_help() {
  local name first line
  for name in "${SERVICES[@]}"; do
    first=1
    while IFS= read -r line; do
      if ((first)); then
        printf '  %-10s %s\n' "$name" "$line"
        first=0
      else
        printf '             %s\n' "$line"
      fi
    done < <(sed -n '2,/^$/s/^# \{0,1\}//p' "${SERVICE_FILE[$name]}")
  done
}

# The help's list of the services' own commands.
verbs_help() {
  local name verb
  for name in "${SERVICES[@]}"; do
    for verb in "${VERBS[@]}"; do
      if [[ ${VERB_SERVICE[$verb]} == "$name" ]]; then printf '%s\n' "${VERB_USAGE[$verb]}"; fi
    done
  done
}
