# shellcheck shell=bash
# Small helpers of the stack harness (sourced by scripts/stack.sh): messages,
# required commands, ports, HTTP, env file lines.

log() { printf 'stack: %s\n' "$*" >&2; }
die() {
  printf 'stack: error: %s\n' "$*" >&2
  exit 1
}

require_cmds() {
  local cmd missing=()
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
  done
  ((${#missing[@]} == 0)) || die "missing commands: ${missing[*]}"
}

abs_path() {
  case $1 in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s\n' "$PWD/$1" ;;
  esac
}

check_port_number() { # name value
  if ! [[ $2 =~ ^[0-9]{1,5}$ ]] || (($2 < 1 || $2 > 65535)); then
    die "$1 must be a port number, got '$2'"
  fi
}

tcp_open() { # host port
  # bash's /dev/tcp: no nc/ss needed. The subshell closes the socket.
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

port_free_or_die() { # what port
  if tcp_open "$BIND_HOST" "$2"; then
    die "$1: port $2 on $BIND_HOST is already in use by another program (not started by this script); free it or choose another port"
  fi
}

http_status() { # curl-args... -> the HTTP status code ("000" when there was no answer)
  curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "$@" 2>/dev/null || true
}

# One line of the env file (see write_env).
env_var() { printf 'export %s=%q\n' "$1" "$2"; }
