#!/usr/bin/env bash
# Run a real Confluent-compatible schema registry on 127.0.0.1 without Docker:
# Apicurio Registry (Maven Central distribution, Java 17) with KafkaSQL storage, i.e.
# its schemas are kept in a topic of a real Kafka broker (e.g. one of scripts/kafka.sh)
# and replayed from there on every start.
#
#   scripts/registry.sh up    NAME BOOTSTRAP  create+start NAME against the broker BOOTSTRAP
#                                             (127.0.0.1:PORT); no-op if it already runs against
#                                             BOOTSTRAP (restarted if against another one).
#                                             Last stdout line: REGISTRY_URL=http://127.0.0.1:PORT/apis/ccompat/v7
#   scripts/registry.sh down  NAME            stop it and delete its run dir (the topics stay on the broker)
#   scripts/registry.sh url   NAME            print its URL if running (exit 1 if not)
#   scripts/registry.sh status|list           one line per NAME: name, state, url, bootstrap, pid
#   scripts/registry.sh logs  NAME            print the tail of its log
#   scripts/registry.sh down-all              down every NAME
#   scripts/registry.sh fetch                 only fetch+unpack the registry into .cache/registry/dist
#
# REGISTRY_URL is the base URL of the Confluent Schema Registry REST API (Apicurio serves it under
# /apis/ccompat/v7): POST $URL/subjects/{s}/versions, GET $URL/schemas/ids/{id},
# POST $URL/compatibility/subjects/{s}/versions/latest, GET|PUT $URL/config[/{s}], ...
# Clients that take a base URL (confluent-kafka, franz-go's sr, ...) use it as it is; append
# paths to it, don't resolve absolute paths against it. Schema ids are Apicurio content ids:
# the same schema under two subjects has one id, as with Confluent's registry.
# Global compatibility starts as BACKWARD (Confluent's default); an incompatible new version
# gets HTTP 409 (error_code 409).
#
# Everything lives under <repo>/.cache/registry (or $FLIGHTSINK_CACHE_DIR/registry):
#   dist/STAMP/   the unpacked distribution (fetched once with Maven; again when
#                 scripts/registry/registry.env changes), registry.jsa (see REGISTRY_CDS)
#   run/NAME/     registry.env (port, bootstrap), config/application.properties, registry.pid,
#                 logs/registry.log, tmp/
#
# Environment knobs:
#   REGISTRY_TOPIC          journal topic on the broker (default _schemas; also <topic>_snapshots,
#                           <topic>_events). Registries sharing a broker and topic share their schemas.
#   REGISTRY_COMPATIBILITY  global compatibility stored at first start while the registry reports
#                           NONE (default BACKWARD; empty: leave it alone)
#   REGISTRY_READY_TIMEOUT  seconds to wait for readiness (default 90)
#   REGISTRY_STOP_TIMEOUT   seconds to wait after SIGTERM before SIGKILL (default 20)
#   REGISTRY_HEAP_OPTS      default "-Xms32m -Xmx256m"
#   REGISTRY_JVM_OPTS       default: serial GC, C1 only, no perf data
#   REGISTRY_CDS            1 (default): the first registry that stops cleanly leaves a class-data-sharing
#                           archive in dist/ (registry.jsa) that makes later starts ~1.5s faster (not
#                           recorded when CI=true, used if there); 0: off
#   REGISTRY_OWNER_PID      (or KAFKA_OWNER_PID) if set, a watchdog runs `down NAME` once that
#                           process has exited
#   JAVA_HOME               java to use (default: java on PATH; needs Java 17+)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
SELF=$ROOT/scripts/registry.sh
CONF_DIR=$ROOT/scripts/registry
CACHE=${FLIGHTSINK_CACHE_DIR:-$ROOT/.cache}
RDIR=$CACHE/registry
RUNS=$RDIR/run
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java
API_PATH=/apis/ccompat/v7
TOPIC=${REGISTRY_TOPIC:-_schemas}
COMPAT=${REGISTRY_COMPATIBILITY-BACKWARD}
READY_TIMEOUT=${REGISTRY_READY_TIMEOUT:-90}
STOP_TIMEOUT=${REGISTRY_STOP_TIMEOUT:-20}
OWNER_PID=${REGISTRY_OWNER_PID:-${KAFKA_OWNER_PID:-}}
read -r -a HEAP_OPTS <<<"${REGISTRY_HEAP_OPTS:--Xms32m -Xmx256m}"
read -r -a JVM_OPTS <<<"${REGISTRY_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true}"

log() { echo "registry.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck disable=SC1091
source "$CONF_DIR/registry.env"

# ---------------------------------------------------------------- distribution

dist_stamp() { cksum <"$CONF_DIR/registry.env" | cut -d' ' -f1; }

# DIST: the unpacked distribution; fetched with Maven (once per registry.env)
ensure_dist() {
  local stamp tmp tgz
  stamp=$(dist_stamp)
  DIST=$RDIR/dist/$stamp
  [[ -f $DIST/$APICURIO_RUNNER && -f $DIST/.complete ]] && return 0
  mkdir -p "$RDIR/dist"
  exec 8>"$RDIR/.dist.lock"
  flock 8
  if [[ -f $DIST/$APICURIO_RUNNER && -f $DIST/.complete ]]; then exec 8>&-; return 0; fi
  command -v mvn >/dev/null || die "mvn not found: install Maven (apt-get install -y maven)"
  command -v "$JAVA" >/dev/null || die "java not found: install a JDK 17+ (apt-get install -y openjdk-17-jdk-headless)"
  tmp=$(mktemp -d "$RDIR/dist/tmp.XXXXXX")
  log "fetching $APICURIO_GAV with Maven into $DIST (once)..."
  # (run in $tmp: no project pom around)
  if ! (cd "$tmp" && mvn -B -q -Dstyle.color=never dependency:copy -Dartifact="$APICURIO_GAV" \
        -DoutputDirectory="$tmp/pkg" >"$tmp/mvn.log" 2>&1); then
    cat "$tmp/mvn.log" >&2
    rm -rf "$tmp"
    die "mvn dependency:copy $APICURIO_GAV failed (see above)"
  fi
  tgz=$(find "$tmp/pkg" -name '*.tar.gz' | head -n 1)
  mkdir -p "$tmp/dist"
  if [[ -z $tgz ]] || ! tar -xzf "$tgz" -C "$tmp/dist"; then
    rm -rf "$tmp"
    die "could not unpack $APICURIO_GAV"
  fi
  [[ -f $tmp/dist/$APICURIO_RUNNER ]] || { rm -rf "$tmp"; die "$APICURIO_RUNNER is not in $APICURIO_GAV"; }
  touch "$tmp/dist/.complete"
  # older distributions (another registry.env) go
  find "$RDIR/dist" -mindepth 1 -maxdepth 1 -type d ! -name "tmp.*" -exec rm -rf {} +
  mv "$tmp/dist" "$DIST"
  rm -rf "$tmp"
  exec 8>&-
}

check_java() {
  local v
  v=$("$JAVA" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
  [[ $v =~ ^[0-9]+$ ]] || die "cannot run $JAVA (need Java 17+)"
  ((v >= 17)) || die "$JAVA is Java $v; the registry needs Java 17+ (set JAVA_HOME)"
}

# ---------------------------------------------------------------- names, locks, state

set_name() {
  [[ -n ${1:-} ]] || die "missing NAME"
  NAME=${1//[^A-Za-z0-9._-]/_}
  [[ $NAME != . && $NAME != .. ]] || die "bad name: $1"
  RUN=$RUNS/$NAME
}

# Prints the registry's pid when the registry of $RUN is alive (checked via its
# command line, so a recycled pid or a zombie does not count).
running_pid() { pid_of_run "$RUN/registry.pid" "-Dflightsink.registry.run=$RUN"; }

load_env() {
  [[ -f $RUN/registry.env ]] || die "no registry named $NAME (run: scripts/registry.sh up $NAME BOOTSTRAP)"
  # shellcheck disable=SC1091
  source "$RUN/registry.env"
}


# a free port below the kernel's ephemeral range (client sockets never take it)
pick_port() {
  local lo hi p
  read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || lo=32768
  hi=$((lo > 12000 ? lo - 1 : 32767))
  for _ in $(seq 200); do
    p=$((10000 + (RANDOM * 32768 + RANDOM) % (hi - 10000)))
    port_listening "$p" && continue
    PORT=$p
    return 0
  done
  die "could not find a free port"
}

# the first address of BOOTSTRAP accepts TCP connections
broker_answers() {
  local first=${BOOTSTRAP%%,*}
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 5 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "${first%:*}" "${first##*:}" 2>/dev/null
}

url() { echo "http://127.0.0.1:$REGISTRY_PORT$API_PATH"; }

# ---------------------------------------------------------------- readiness

# http GET|PUT PATH [BODY]: prints the body and then the status code on its own line
http() {
  local args=(-sS --max-time 5 -X "$1" -w '\n%{http_code}')
  [[ -n ${3:-} ]] && args+=(-H 'Content-Type: application/vnd.schemaregistry.v1+json' --data "$3")
  curl "${args[@]}" "http://127.0.0.1:$REGISTRY_PORT$2" 2>/dev/null
}

# ready: /health/ready says UP (the KafkaSQL journal has been replayed) and the
# Confluent API answers GET /config
api_ready() {
  local out
  out=$(http GET /health/ready) || return 1
  [[ ${out##*$'\n'} == 200 ]] || return 1
  out=$(http GET "$API_PATH/config") || return 1
  [[ ${out##*$'\n'} == 200 && $out == *compatibilityLevel* ]]
}

log_tail() {
  {
    echo "----- $RUN/logs/registry.log (tail) -----"
    tail -n "${1:-60}" "$RUN/logs/registry.log" 2>/dev/null | cut -c1-400 || true
    echo "-----"
  } >&2
}

log_has() { # log_has OFFSET TEXT
  local n
  n=$(tail -c +$(($1 + 1)) "$RUN/logs/registry.log" 2>/dev/null | grep -cF -- "$2") || true
  [[ ${n:-0} -gt 0 ]]
}

# wait_ready PID LOG_OFFSET: 0 ready, 1 died, 2 timed out, 3 port already in use
wait_ready() {
  local pid=$1 off=$2 deadline=$((SECONDS + READY_TIMEOUT))
  while :; do
    if ! alive "$pid"; then
      if log_has "$off" 'in use'; then return 3; fi
      return 1
    fi
    if api_ready; then return 0; fi
    ((SECONDS < deadline)) || return 2
    sleep 0.25
  done
}

# the global compatibility: Confluent's registry starts with BACKWARD and reports it
set_compat() {
  local out
  [[ -n $COMPAT ]] || return 0
  out=$(http GET "$API_PATH/config") || return 0
  [[ $out == *'"NONE"'* ]] || return 0
  out=$(http PUT "$API_PATH/config" "{\"compatibility\":\"$COMPAT\"}") || true
  [[ ${out##*$'\n'} == 200 ]] || log "warning: PUT /config $COMPAT answered: ${out//$'\n'/ }"
}

# ---------------------------------------------------------------- start / stop

write_config() {
  mkdir -p "$RUN/config" "$RUN/logs" "$RUN/tmp" "$RUN/snapshots"
  cat >"$RUN/registry.env" <<EOF
REGISTRY_PORT=$PORT
REGISTRY_BOOTSTRAP=$BOOTSTRAP
REGISTRY_TOPIC=$TOPIC
EOF
  cp "$CONF_DIR/application.properties" "$RUN/config/application.properties"
  head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$RUN/instance"
}

# launch: start the JVM in the background and wait. Returns wait_ready's code.
launch() {
  local pid off rc
  ensure_dist
  check_java
  mkdir -p "$RUN/logs" "$RUN/tmp"
  touch "$RUN/logs/registry.log"
  off=$(stat -c %s "$RUN/logs/registry.log")
  rm -f "$RUN/registry.jsa"
  echo "$DIST" >"$RUN/dist"
  CDS_OPTS=()
  if [[ ${REGISTRY_CDS:-1} == 1 ]]; then
    if [[ -f $DIST/registry.jsa ]]; then
      # -Xshare:auto (the default): an archive that does not match is ignored
      CDS_OPTS=(-XX:SharedArchiveFile="$DIST/registry.jsa")
    elif [[ ${CI:-} != true ]]; then
      # the first registry on this distribution records the archive when it exits
      # (~3s slower start, ~5s slower stop, once); kill_registry moves it to dist/ after
      # a clean stop. Not under CI: its fresh clone would pay that on every run.
      CDS_OPTS=(-XX:ArchiveClassesAtExit="$RUN/registry.jsa" "-Xlog:cds*=error")
    fi
  fi
  echo "=== $(date '+%F %T') start: port $REGISTRY_PORT, bootstrap $REGISTRY_BOOTSTRAP, topic $REGISTRY_TOPIC ===" \
    >>"$RUN/logs/registry.log"
  (
    cd "$RUN" # Quarkus reads ./config/application.properties
    exec setsid nohup "$JAVA" "${HEAP_OPTS[@]}" "${JVM_OPTS[@]}" "${CDS_OPTS[@]}" \
      -Dflightsink.registry.run="$RUN" -Djava.io.tmpdir="$RUN/tmp" \
      -Dquarkus.http.port="$REGISTRY_PORT" \
      -Dapicurio.kafkasql.bootstrap.servers="$REGISTRY_BOOTSTRAP" \
      -Dapicurio.kafkasql.topic="$REGISTRY_TOPIC" \
      -Dapicurio.kafkasql.snapshots.topic="${REGISTRY_TOPIC}_snapshots" \
      -Dapicurio.events.kafka.topic="${REGISTRY_TOPIC}_events" \
      -Dapicurio.events.kafka.config.bootstrap.servers="$REGISTRY_BOOTSTRAP" \
      -Dapicurio.storage.snapshot.location="$RUN/snapshots" \
      -jar "$DIST/$APICURIO_RUNNER" \
      </dev/null >>"$RUN/logs/registry.log" 2>&1 8>&- 9>&-
  ) &
  pid=$!
  echo "$pid" >"$RUN/registry.pid"
  rc=0
  wait_ready "$pid" "$off" || rc=$?
  if ((rc == 0)); then
    set_compat
    start_watchdog
  elif ((rc == 2)); then
    log_tail 80
    log "registry $NAME not ready after ${READY_TIMEOUT}s; killing it"
    kill_registry 5
  fi
  return "$rc"
}

start_watchdog() {
  [[ -n $OWNER_PID ]] || return 0
  # shellcheck disable=SC2016 # expanded by the inner bash
  setsid nohup bash -c '
      owner=$1 run=$2 inst=$3 self=$4 name=$5
      same() { [[ -f $run/instance && $(<"$run/instance") == "$inst" ]]; }
      while kill -0 "$owner" 2>/dev/null; do same || exit 0; sleep 2; done
      same && exec bash "$self" down "$name"' \
    _ "$OWNER_PID" "$RUN" "$(<"$RUN/instance")" "$SELF" "$NAME" \
    </dev/null >/dev/null 2>&1 8>&- 9>&- &
}

kill_registry() { # [STOP_TIMEOUT]
  local pid waited=0 killed=0 dist='' timeout=${1:-$STOP_TIMEOUT}
  pid=$(running_pid) || { rm -f "$RUN/registry.pid" "$RUN/registry.jsa"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  while alive "$pid"; do
    if ((waited >= timeout * 10)); then
      log "registry $NAME (pid $pid) still up after ${timeout}s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      killed=1
      sleep 0.2
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  rm -f "$RUN/registry.pid"
  # a clean exit has written the whole CDS archive (see launch)
  [[ -f $RUN/dist ]] && dist=$(<"$RUN/dist")
  if ((killed == 0)) && [[ -s $RUN/registry.jsa && -n $dist && -d $dist && ! -f $dist/registry.jsa ]]; then
    mv -f "$RUN/registry.jsa" "$dist/registry.jsa" || true
  fi
  rm -f "$RUN/registry.jsa"
}

cmd_up() {
  local attempt rc t0=$SECONDS
  [[ $BOOTSTRAP =~ ^[^[:space:],]+:[0-9]+(,[^[:space:],]+:[0-9]+)*$ ]] \
    || die "usage: scripts/registry.sh up NAME BOOTSTRAP (BOOTSTRAP like 127.0.0.1:9092, got '$BOOTSTRAP')"
  lock_name
  broker_answers || die "the Kafka broker $BOOTSTRAP does not accept connections (start it first: scripts/kafka.sh up NAME)"
  if running_pid >/dev/null; then
    load_env
    if [[ $REGISTRY_BOOTSTRAP == "$BOOTSTRAP" && $REGISTRY_TOPIC == "$TOPIC" ]]; then
      echo "REGISTRY_URL=$(url)"
      return 0
    fi
    log "registry $NAME runs against $REGISTRY_BOOTSTRAP (topic $REGISTRY_TOPIC); restarting it against $BOOTSTRAP (topic $TOPIC)"
    kill_registry
  fi
  command -v curl >/dev/null || die "curl not found (apt-get install -y curl)"
  ensure_dist
  check_java
  for attempt in 1 2 3; do
    PORT=''
    if [[ -f $RUN/registry.env ]]; then
      # a stopped one keeps its port when it is free
      load_env
      port_listening "$REGISTRY_PORT" || PORT=$REGISTRY_PORT
    fi
    [[ -n $PORT ]] || pick_port
    rm -rf "$RUN/config" "$RUN/tmp"
    write_config
    load_env
    rc=0
    launch || rc=$?
    case $rc in
      0) log "registry $NAME ready at $(url) in $((SECONDS - t0))s (broker $BOOTSTRAP, topic $TOPIC, run dir $RUN)"
         echo "REGISTRY_URL=$(url)"
         return 0 ;;
      3) log "port collision (attempt $attempt); retrying with another port"
         rm -f "$RUN/registry.env" ;;
      1) log_tail 80; rm -f "$RUN/registry.pid"; die "registry $NAME exited during startup (log: $RUN/logs/registry.log)" ;;
      *) die "registry $NAME did not start (log: $RUN/logs/registry.log)" ;;
    esac
  done
  die "registry $NAME: could not bind a free port after 3 attempts"
}

cmd_down() {
  lock_name
  [[ -d $RUN ]] || return 0
  kill_registry
  rm -rf "$RUN"
  log "removed registry $NAME"
}

cmd_url() {
  running_pid >/dev/null || { log "registry $NAME is not running"; return 1; }
  load_env
  url
}

cmd_status() {
  local d pid state
  [[ -d $RUNS ]] || return 0
  for d in "$RUNS"/*/; do
    [[ -d $d ]] || continue
    set_name "$(basename "$d")"
    REGISTRY_PORT='?' REGISTRY_BOOTSTRAP='?'
    # shellcheck disable=SC1091
    [[ -f $RUN/registry.env ]] && source "$RUN/registry.env"
    if pid=$(running_pid); then state=running; else state=stopped pid=-; fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$NAME" "$state" "$(url)" "$REGISTRY_BOOTSTRAP" "$pid"
  done
}

cmd_down_all() {
  local d
  [[ -d $RUNS ]] || return 0
  for d in "$RUNS"/*/; do
    [[ -d $d ]] || continue
    bash "$SELF" down "$(basename "$d")"
  done
}

main() {
  local cmd=${1:-}
  shift || true
  case $cmd in
    up | down | url | addr | logs) set_name "${1:-}" ;;
  esac
  case $cmd in
    up) BOOTSTRAP=${2:-}; cmd_up ;;
    down) cmd_down ;;
    url | addr) cmd_url ;;
    status | list) cmd_status ;;
    logs) tail -n "${REGISTRY_LOG_LINES:-100}" "$RUN/logs/registry.log" ;;
    down-all) cmd_down_all ;;
    fetch) ensure_dist ;;
    *)
      sed -n '2,/^set -euo/p' "$SELF" | sed '$d; s/^# \{0,1\}//' >&2
      exit 2 ;;
  esac
}

main "$@"
