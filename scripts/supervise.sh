# shellcheck shell=bash
# The process supervisor of scripts/kafka.sh and scripts/registry.sh (sourced, not run): what
# starting, watching and stopping a local Java service takes, written once.
#
# Names. A script manages NAMEs, each with a run dir $RUNS/NAME. Commands on one NAME hold its
# lock ($RUNS/.NAME.lock, sv_lock); `down` stops what runs and deletes the run dir (sv_cmd_down);
# `down-all` downs every NAME (sv_cmd_down_all); a watchdog downs NAME once a given owner process
# has exited (sv_watchdog), and $RUNS/NAME/owner names that process.
#
# Units. A unit is one supervised process with a directory of its own, DIR, and a KIND (kafka,
# registry):
#   DIR/KIND.pid       its pid, written when it is spawned, removed when it is stopped
#   DIR/KIND.jsa       the class-data-sharing archive the JVM records when it exits (sv_cds_opts),
#   DIR/KIND.jsa.to    and where that archive goes after a clean stop
# Its command line carries the argument -Dflightsink.KIND.run=DIR (sv_marker), so a recycled pid
# or a zombie never passes for it (sv_pid). Today a NAME is one unit in DIR=$RUNS/NAME; a node of a
# multi-node NAME is a unit in a DIR of its own below $RUNS/NAME, started, stopped and signalled
# alone. sv_unit selects the unit the sv_ functions act on.
#
# The sourcing script sets, before it sources this file:
#   SELF           its own path (usage text, the watchdog's `down`)
#   RUNS           the folder of the run dirs
#   READY_TIMEOUT  seconds sv_launch waits for readiness
#   STOP_TIMEOUT   seconds sv_stop waits after SIGTERM before SIGKILL
#   JAVA           the java to run
#   DEFAULT_NAME   the NAME of commands given none (empty: NAME is required)
# and defines the commands it offers as functions cmd_COMMAND (cmd_down_all for down-all), which
# sv_main dispatches to.

SV_PROG=$(basename "${SELF:-$0}")

log() { echo "$SV_PROG: $*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- processes and ports

# alive PID: the process exists and is not a zombie (a child not reaped yet).
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

# port_listening PORT: something accepts connections on 127.0.0.1:PORT.
port_listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# sv_free_ports N: PORTS=(N distinct ports nothing listens on), below the kernel's ephemeral
# range so that client sockets never take them (they must stay free across stop/start).
sv_free_ports() {
  local lo hi p
  read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || lo=32768
  hi=$((lo > 12000 ? lo - 1 : 32767))
  PORTS=()
  for _ in $(seq 200); do
    p=$((10000 + (RANDOM * 32768 + RANDOM) % (hi - 10000)))
    [[ " ${PORTS[*]} " == *" $p "* ]] && continue
    port_listening "$p" && continue
    PORTS+=("$p")
    ((${#PORTS[@]} < $1)) || return 0
  done
  die "could not find $1 free port(s)"
}

# ---------------------------------------------------------------- names

# sv_set_name ARG: NAME (ARG, or DEFAULT_NAME when ARG is empty, made safe for a path) and its
# run dir RUN. Without a DEFAULT_NAME an empty ARG is an error.
sv_set_name() {
  NAME=${1:-${DEFAULT_NAME:-}}
  [[ -n $NAME ]] || die "missing NAME"
  NAME=${NAME//[^A-Za-z0-9._-]/_}
  [[ $NAME != . && $NAME != .. ]] || die "bad name: $1"
  RUN=$RUNS/$NAME
}

# sv_lock: serialises commands on NAME ($RUNS/.NAME.lock, held on fd 9 until the script exits).
sv_lock() {
  mkdir -p "$RUNS"
  exec 9>"$RUNS/.$NAME.lock"
  flock 9
}

# sv_names: every NAME that has a run dir, one a line.
sv_names() {
  local d
  [[ -d $RUNS ]] || return 0
  for d in "$RUNS"/*/; do
    [[ -d $d ]] && basename "$d"
  done
  return 0
}

# sv_load FILE HINT: source FILE of $RUN (ports and such), or fail with HINT when NAME has none.
sv_load() {
  [[ -f $RUN/$1 ]] || die "$2"
  # shellcheck disable=SC1090
  source "$RUN/$1"
}

# sv_new_instance [OWNER_PID]: a new random identity for NAME ($RUN/instance), so that a watchdog
# of an earlier incarnation of NAME leaves this one alone; and its owner (sv_owner).
sv_new_instance() {
  head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$RUN/instance"
  sv_owner "${1:-}"
}

# sv_owner [OWNER_PID]: records the process NAME was started for ($RUN/owner; none: removed), so
# that this process's clean-up (scripts/test.sh) downs what it started and nothing else.
sv_owner() {
  if [[ -n ${1:-} ]]; then echo "$1" >"$RUN/owner"; else rm -f "$RUN/owner"; fi
}

# sv_watchdog OWNER_PID: once OWNER_PID has exited, run `SELF down NAME` (unless NAME has been
# recreated since: another instance). Nothing when OWNER_PID is empty.
sv_watchdog() {
  [[ -n ${1:-} ]] || return 0
  sv_owner "$1"
  # shellcheck disable=SC2016 # expanded by the inner bash
  setsid nohup bash -c '
      owner=$1 run=$2 inst=$3 self=$4 name=$5
      same() { [[ -f $run/instance && $(<"$run/instance") == "$inst" ]]; }
      while kill -0 "$owner" 2>/dev/null; do same || exit 0; sleep 2; done
      same && exec bash "$self" down "$name"' \
    _ "$1" "$RUN" "$(<"$RUN/instance")" "$SELF" "$NAME" \
    </dev/null >/dev/null 2>&1 8>&- 9>&- &
}

# ---------------------------------------------------------------- units

# sv_unit DIR KIND LABEL LOG [OUT]: the unit the following sv_ calls act on. LABEL names it in
# messages ("broker NAME"); LOG is the file its readiness and failures are read from; OUT (default
# LOG) takes its stdout and stderr.
sv_unit() {
  UNIT_DIR=$1 UNIT_KIND=$2 UNIT_LABEL=$3 UNIT_LOG=$4 UNIT_OUT=${5:-$4}
  UNIT_PIDFILE=$UNIT_DIR/$UNIT_KIND.pid
  UNIT_JSA=$UNIT_DIR/$UNIT_KIND.jsa
}

# sv_marker: the command-line argument that identifies the unit's process.
sv_marker() { echo "-Dflightsink.$UNIT_KIND.run=$UNIT_DIR"; }

# sv_pid: prints the unit's pid when it runs (alive, and its command line has sv_marker).
sv_pid() {
  local pid cmdline
  [[ -f $UNIT_PIDFILE ]] || return 1
  pid=$(<"$UNIT_PIDFILE")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  cmdline=$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  grep -qxF -- "$(sv_marker)" <<<"$cmdline" || return 1
  echo "$pid"
}

# sv_log_has OFFSET TEXT: the unit's LOG has TEXT after byte OFFSET (grep -c reads it all, so no
# SIGPIPE/pipefail surprise as with grep -q).
sv_log_has() {
  local n
  n=$(tail -c +$(($1 + 1)) "$UNIT_LOG" 2>/dev/null | grep -cF -- "$2") || true
  [[ ${n:-0} -gt 0 ]]
}

# sv_log_tail [N]: the last N (default 60) lines of the unit's LOG, and of OUT when that is
# another file, on stderr.
sv_log_tail() {
  {
    echo "----- $UNIT_LOG (tail) -----"
    tail -n "${1:-60}" "$UNIT_LOG" 2>/dev/null | cut -c1-400 || true
    if [[ $UNIT_OUT != "$UNIT_LOG" ]]; then
      echo "----- $UNIT_OUT (tail) -----"
      tail -n 20 "$UNIT_OUT" 2>/dev/null | cut -c1-400 || true
    fi
    echo "-----"
  } >&2
}

# sv_spawn CMD...: start CMD as the unit (in DIR, in a session of its own, detached from this
# script's terminal and locks, output appended to OUT) and record its pid: UNIT_PID. CMD must carry
# sv_marker.
sv_spawn() {
  [[ " $* " == *" $(sv_marker) "* ]] || die "internal: the command of $UNIT_LABEL lacks $(sv_marker)"
  mkdir -p "$UNIT_DIR" "$(dirname "$UNIT_OUT")"
  rm -f "$UNIT_JSA" # an archive of an earlier run (it was killed) must not be taken for this one's
  (
    cd "$UNIT_DIR" || exit 1
    exec setsid nohup "$@" </dev/null >>"$UNIT_OUT" 2>&1 8>&- 9>&-
  ) &
  UNIT_PID=$!
  echo "$UNIT_PID" >"$UNIT_PIDFILE"
}

# sv_wait_ready PID IN_USE READY_CMD...: wait until READY_CMD succeeds while PID lives.
# Returns 0 ready, 1 died, 2 not ready after READY_TIMEOUT, 3 died because its port was taken
# (its LOG says IN_USE since UNIT_LOG_OFFSET, the LOG's size at spawn).
sv_wait_ready() {
  local pid=$1 in_use=$2 deadline=$((SECONDS + READY_TIMEOUT))
  shift 2
  while :; do
    if ! alive "$pid"; then
      if sv_log_has "$UNIT_LOG_OFFSET" "$in_use"; then return 3; fi
      return 1
    fi
    if "$@"; then return 0; fi
    ((SECONDS < deadline)) || return 2
    sleep 0.2
  done
}

# sv_launch IN_USE READY_CMD... -- CMD...: sv_spawn CMD, then sv_wait_ready; a unit not ready in
# time is shown (log tail) and stopped (within ABANDON_TIMEOUT seconds, default STOP_TIMEOUT).
# Returns sv_wait_ready's code.
sv_launch() {
  local in_use=$1 ready=() rc=0
  shift
  while [[ $# -gt 0 && $1 != -- ]]; do ready+=("$1"); shift; done
  shift
  mkdir -p "$(dirname "$UNIT_LOG")"
  touch "$UNIT_LOG"
  UNIT_LOG_OFFSET=$(stat -c %s "$UNIT_LOG")
  sv_spawn "$@"
  sv_wait_ready "$UNIT_PID" "$in_use" "${ready[@]}" || rc=$?
  if ((rc == 2)); then
    sv_log_tail 80
    log "$UNIT_LABEL not ready after ${READY_TIMEOUT}s; killing it"
    sv_stop "${ABANDON_TIMEOUT:-$STOP_TIMEOUT}"
  fi
  return "$rc"
}

# sv_stop [TIMEOUT]: stop the unit: SIGTERM, then SIGKILL after TIMEOUT (default STOP_TIMEOUT)
# seconds. After a clean exit its class-data-sharing archive goes where sv_cds_opts said.
sv_stop() {
  local pid waited=0 killed=0 timeout=${1:-$STOP_TIMEOUT} to=''
  if ! pid=$(sv_pid); then
    rm -f "$UNIT_PIDFILE" "$UNIT_JSA"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  while alive "$pid"; do
    if ((waited >= timeout * 10)); then
      log "$UNIT_LABEL (pid $pid) still up after ${timeout}s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      killed=1
      sleep 0.2
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  rm -f "$UNIT_PIDFILE"
  # only a clean exit has written the whole archive
  [[ -f $UNIT_JSA.to ]] && to=$(<"$UNIT_JSA.to")
  if ((killed == 0)) && [[ -s $UNIT_JSA && -n $to && -d $(dirname "$to") && ! -f $to ]]; then
    mv -f "$UNIT_JSA" "$to" || true
  fi
  rm -f "$UNIT_JSA" "$UNIT_JSA.to"
}

# ---------------------------------------------------------------- Java

# sv_need_build_tools: Maven and a JDK are installed (to fetch a distribution).
sv_need_build_tools() {
  command -v mvn >/dev/null || die "mvn not found: install Maven (apt-get install -y maven)"
  command -v "$JAVA" >/dev/null || die "java not found: install a JDK 17+ (apt-get install -y openjdk-17-jdk-headless)"
}

# sv_fetch_once LOCKFILE DONE_CMD FETCH_CMD: run FETCH_CMD unless DONE_CMD says it is done;
# scripts running at once fetch once (under LOCKFILE; the others wait and find it done).
sv_fetch_once() {
  "$2" && return 0
  mkdir -p "$(dirname "$1")"
  exec 8>"$1"
  flock 8
  if ! "$2"; then
    sv_need_build_tools
    "$3"
  fi
  exec 8>&-
}

# sv_cds_opts ARCHIVE [RECORD]: CDS_OPTS, the JVM options for a class-data-sharing archive.
# ARCHIVE is used when it exists (-Xshare:auto: one that does not match is ignored); else, with
# RECORD=1, the unit records one when it exits, which sv_stop moves to ARCHIVE after a clean stop
# (the next starts are faster). Empty when CDS is off (ARCHIVE empty).
# shellcheck disable=SC2034 # CDS_OPTS is read by the sourcing script
sv_cds_opts() {
  CDS_OPTS=()
  rm -f "$UNIT_JSA.to"
  [[ -n $1 ]] || return 0
  if [[ -f $1 ]]; then
    CDS_OPTS=(-XX:SharedArchiveFile="$1")
  elif [[ ${2:-0} == 1 ]]; then
    CDS_OPTS=(-XX:ArchiveClassesAtExit="$UNIT_JSA" "-Xlog:cds*=error")
    echo "$1" >"$UNIT_JSA.to"
  fi
}

# ---------------------------------------------------------------- commands

# sv_cmd_down NAME STOP_CMD [WHAT]: stop NAME's units with STOP_CMD and delete its run dir.
sv_cmd_down() {
  sv_set_name "$1"
  sv_lock
  [[ -d $RUN ]] || return 0
  "$2"
  rm -rf "$RUN"
  log "removed ${3:+$3 }$NAME"
}

# sv_cmd_down_all: `SELF down NAME` for every NAME.
sv_cmd_down_all() {
  local name
  for name in $(sv_names); do
    bash "$SELF" down "$name"
  done
}

# sv_main COMMAND ARGS...: run cmd_COMMAND ARGS (dashes become underscores), or print the usage
# (the header comment of SELF) and exit 2.
sv_main() {
  local fn=cmd_${1:-}
  fn=${fn//-/_}
  if [[ -n ${1:-} ]] && declare -F "$fn" >/dev/null; then
    shift
    "$fn" "$@"
    return
  fi
  sed -n '2,/^set -euo/p' "$SELF" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}
