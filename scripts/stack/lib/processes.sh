# shellcheck shell=bash
# Processes (sourced by scripts/stack.sh): the run dir's lock, starting a
# service in its own process group, telling whether it runs, stopping it,
# waiting for it to answer.
#
# Each service runs in its own process group (setsid), with the group id equal
# to the PID recorded in $RUN_DIR/pids/<name>.pid, so stopping a service kills
# the whole group (the OpenHIM master renames itself "Core" and forks a worker).
# $RUN_DIR/pids/<name>.start holds the leader's start time (from /proc) so a
# PID reused by an unrelated process after a crash or reboot is not mistaken
# for the service.

# Serialise concurrent runs on one run dir (two terminals). The lock fd 9 (and
# the cache lock's fd 8, see lib/install.sh) is closed in every started
# service (see launch), otherwise a long-running child would hold the lock for
# ever.
lock_run_dir() {
  mkdir -p "$RUN_DIR/pids" "$RUN_DIR/logs"
  exec 9>"$RUN_DIR/.lock"
  flock 9
}

pid_file() { printf '%s/pids/%s.pid\n' "$RUN_DIR" "$1"; }
start_file() { printf '%s/pids/%s.start\n' "$RUN_DIR" "$1"; }
log_file() { printf '%s/logs/%s.log\n' "$RUN_DIR" "$1"; }

proc_start_time() { # pid -> start time in clock ticks since boot (field 22 of /proc/PID/stat)
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  # The command name (field 2) may contain spaces: cut after its closing ')'.
  stat=${stat##*) }
  # shellcheck disable=SC2086 # deliberate word splitting
  set -- $stat
  printf '%s\n' "${20}"
}

proc_state() { # pid -> state letter (field 3 of /proc/PID/stat): R, S, D, Z (zombie)...
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  printf '%s\n' "${stat%% *}"
}

service_pid() { # name -> recorded pid
  local f pid
  f=$(pid_file "$1")
  [[ -s $f ]] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  printf '%s\n' "$pid"
}

# True when the recorded leader process exists (perhaps as a zombie) and is
# the one we started.
service_leader_ours() { # name
  local pid start
  pid=$(service_pid "$1") || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  start=$(proc_start_time "$pid") || return 1
  [[ -f $(start_file "$1") && $(<"$(start_file "$1")") == "$start" ]]
}

# True when the recorded leader process is alive and is the one we started.
# A killed or crashed service stays a zombie until init reaps it (about 2 s
# here): that is not running.
service_running() { # name
  service_leader_ours "$1" && [[ $(proc_state "$(service_pid "$1")") != Z ]]
}

# Start "$@" in directory $2 as service $1, in a new process group.
launch() { # name cwd cmd...
  local name=$1 cwd=$2 pid logf
  shift 2
  logf=$(log_file "$name")
  : >"$logf"
  # In a non-interactive script a background child is never a process group
  # leader, so setsid(1) calls setsid() in place (no extra fork) and $! is the
  # service's own PID, which becomes its session and process group id.
  (
    cd -- "$cwd" || exit 1
    exec setsid "$@" </dev/null >>"$logf" 2>&1 8>&- 9>&-
  ) &
  pid=$!
  printf '%s\n' "$pid" >"$(pid_file "$name")"
  # /proc/PID/stat exists from fork on; the start time does not change on exec.
  proc_start_time "$pid" >"$(start_file "$name")" || true
  log "$name: started, pid $pid, log $logf"
}

# Stop a service: its own stop_<name> when its file has one, else stop_group.
stop_service() { # name
  if declare -F "stop_$1" >/dev/null; then "stop_$1"; else stop_group "$1"; fi
}

# Kill the service's process group (TERM, then KILL after 5 s), if it is ours.
stop_group() { # name
  local name=$1 pid i
  if pid=$(service_pid "$name"); then
    if kill -0 "$pid" 2>/dev/null && ! service_leader_ours "$name"; then
      # The PID now belongs to some other process: not ours to kill.
      log "$name: stale pid file (pid $pid is another process), removing it"
    elif kill -0 -- "-$pid" 2>/dev/null; then
      # Leader alive, or leader gone but members of its group left (a PID is
      # never reused while it is still a process group id, so they are ours).
      log "$name: stopping process group $pid"
      kill -TERM -- "-$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        kill -0 -- "-$pid" 2>/dev/null || break
        sleep 0.1
      done
      if kill -0 -- "-$pid" 2>/dev/null; then
        log "$name: still running after 5 s, sending KILL"
        kill -KILL -- "-$pid" 2>/dev/null || true
        for ((i = 0; i < 20; i++)); do
          kill -0 -- "-$pid" 2>/dev/null || break
          sleep 0.1
        done
      fi
    fi
  fi
  rm -f -- "$(pid_file "$name")" "$(start_file "$name")"
}

fail_service() { # name message
  local logf
  logf=$(log_file "$1")
  printf 'stack: error: %s: %s\n' "$1" "$2" >&2
  if [[ -s $logf ]]; then
    printf 'stack: last lines of %s:\n' "$logf" >&2
    tail -n 40 -- "$logf" | sed 's/^/    /' >&2
  else
    printf 'stack: its log %s is empty\n' "$logf" >&2
  fi
  stop_service "$1"
  log "services already started are left running; '$STACK_SCRIPT down' stops them"
  exit 1
}

# Poll "$@" every 0.5 s until it succeeds; fail (with the log's tail) when the
# service dies, when its optional <name>_broken check says it cannot come up,
# or after STACK_START_TIMEOUT seconds.
wait_until() { # name what cmd...
  local name=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + STACK_START_TIMEOUT))
  while ! "$@"; do
    service_running "$name" || fail_service "$name" "exited before $what"
    if declare -F "${name}_broken" >/dev/null && "${name}_broken"; then
      fail_service "$name" "failing to start (see its log below)"
    fi
    ((SECONDS < deadline)) || fail_service "$name" "$what not reached within ${STACK_START_TIMEOUT} s"
    sleep 0.5
  done
}
