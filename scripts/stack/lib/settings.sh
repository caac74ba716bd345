# shellcheck shell=bash
# Settings (sourced by scripts/stack.sh): the core's own, those the services
# declare (stack_setting, stack_port), the rules of a running stack, and the
# files of the run dir that describe it (settings, env).

# shellcheck disable=SC2034 # used by lib/install.sh and the service files
CACHE=$(abs_path "${CHT_FHIR_MEDIATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cht-fhir-mediator}")
RUN_DIR=$(abs_path "${STACK_RUN_DIR:-${TMPDIR:-/tmp}/cht-fhir-mediator-stack}")
STACK_START_TIMEOUT=${STACK_START_TIMEOUT:-60}

# Everything listens on this address only.
# shellcheck disable=SC2034 # used by lib/common.sh and the service files
BIND_HOST=127.0.0.1

# shellcheck disable=SC2034 # used by lib/tls.sh and the service files
TLS_DIR="$RUN_DIR/tls"
ENV_FILE="$RUN_DIR/env"
SETTINGS_FILE="$RUN_DIR/settings"

# Settings a running stack keeps (see the header of scripts/stack.sh): saved
# by `up` in $RUN_DIR/settings, reloaded while any service runs. Filled in
# start order by services_init from each service's declarations.
SETTINGS_VARS=()
# Those given in this script's environment (before the defaults).
declare -A SETTING_GIVEN=()
# Each service's settings (space-separated), in declaration order.
declare -A SERVICE_SETTINGS=()
declare -A SETTING_DEFAULT=()
declare -A SETTING_IS_PORT=()

# stack_setting NAME DEFAULT, in a service file: a setting of the service
# being declared; an empty or unset value means the default.
stack_setting() { # name default
  local var=$1
  declaring "stack_setting $var"
  [[ $var =~ ^[A-Z][A-Z0-9_]*$ ]] || die "stack_setting: bad variable name '$var'"
  SERVICE_SETTINGS[$DECLARING]+=" $var"
  SETTING_DEFAULT[$var]=$2
  if [[ -n ${!var:-} ]]; then
    SETTING_GIVEN[$var]=1
  else
    printf -v "$var" '%s' "$2"
  fi
}

# stack_port NAME DEFAULT: a setting that is a TCP port on $BIND_HOST.
stack_port() { # name default
  stack_setting "$1" "$2"
  SETTING_IS_PORT[$1]=1
}

is_setting() { # name
  local v
  for v in "${SETTINGS_VARS[@]}"; do
    [[ $v == "$1" ]] && return 0
  done
  return 1
}

# While any service runs, use the settings the stack was started with (see
# the header); another value given in the environment is an error.
load_settings() {
  [[ -f $SETTINGS_FILE ]] || return 0
  any_running || return 0
  local line name value
  while IFS= read -r line; do
    name=${line%%=*}
    value=${line#*=}
    is_setting "$name" || continue
    if [[ -n ${SETTING_GIVEN[$name]:-} && ${!name} != "$value" ]]; then
      die "$name is set to another value than the running stack was started with: run '$STACK_SCRIPT down' first, or unset $name"
    fi
    printf -v "$name" '%s' "$value"
  done <"$SETTINGS_FILE"
}

save_settings() {
  local tmp="$SETTINGS_FILE.tmp" name
  for name in "${SETTINGS_VARS[@]}"; do
    printf '%s=%s\n' "$name" "${!name}"
  done >"$tmp"
  mv -- "$tmp" "$SETTINGS_FILE"
}

# Every port, the timeout, then each service's own check_settings_<name>.
check_settings() {
  local name
  for name in "${SETTINGS_VARS[@]}"; do
    if [[ -n ${SETTING_IS_PORT[$name]:-} ]]; then check_port_number "$name" "${!name}"; fi
  done
  [[ $STACK_START_TIMEOUT =~ ^[0-9]+$ ]] || die "STACK_START_TIMEOUT must be a number of seconds"
  for name in "${SERVICES[@]}"; do
    if declare -F "check_settings_$name" >/dev/null; then "check_settings_$name"; fi
  done
}

# The help's list of settings: one line per service, with the defaults.
settings_help() {
  local name var line
  for name in "${SERVICES[@]}"; do
    line=
    for var in ${SERVICE_SETTINGS[$name]:-}; do
      line+=" $var=${SETTING_DEFAULT[$var]}"
    done
    if [[ -n $line ]]; then printf '  %-10s%s\n' "$name" "$line"; fi
  done
}

# The env file describes the services running now: each one's env_<name>.
write_env() {
  local tmp="$ENV_FILE.tmp" name
  {
    printf '# cht-fhir-mediator local stack, written by %s\n' "$STACK_SCRIPT"
    for name in "${SERVICES[@]}"; do
      if service_running "$name"; then "env_$name"; fi
    done
    env_var STACK_SCRIPT "$STACK_SCRIPT"
    env_var STACK_RUN_DIR "$RUN_DIR"
  } >"$tmp"
  mv -- "$tmp" "$ENV_FILE"
}
