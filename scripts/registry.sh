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
#                 logs/registry.log, tmp/, owner (the owner pid below, if any)
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
SELF=$ROOT/scripts/registry.sh
CONF_DIR=$ROOT/scripts/registry
CACHE=${FLIGHTSINK_CACHE_DIR:-$ROOT/.cache}
RDIR=$CACHE/registry
RUNS=$RDIR/run
DEFAULT_NAME=''
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java
API_PATH=/apis/ccompat/v7
TOPIC=${REGISTRY_TOPIC:-_schemas}
COMPAT=${REGISTRY_COMPATIBILITY-BACKWARD}
READY_TIMEOUT=${REGISTRY_READY_TIMEOUT:-90}
STOP_TIMEOUT=${REGISTRY_STOP_TIMEOUT:-20}
ABANDON_TIMEOUT=5 # a registry that never became ready has nothing to save
OWNER_PID=${REGISTRY_OWNER_PID:-${KAFKA_OWNER_PID:-}}
read -r -a HEAP_OPTS <<<"${REGISTRY_HEAP_OPTS:--Xms32m -Xmx256m}"
read -r -a JVM_OPTS <<<"${REGISTRY_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true}"

# shellcheck source=scripts/supervise.sh
source "$ROOT/scripts/supervise.sh"
# shellcheck disable=SC1091
source "$CONF_DIR/registry.env"

# ---------------------------------------------------------------- distribution

dist_stamp() { cksum <"$CONF_DIR/registry.env" | cut -d' ' -f1; }

dist_fetched() { [[ -f $DIST/$APICURIO_RUNNER && -f $DIST/.complete ]]; }

fetch_dist() {
  local tmp tgz
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
}

# DIST: the unpacked distribution; fetched with Maven (once per registry.env)
ensure_dist() {
  DIST=$RDIR/dist/$(dist_stamp)
  mkdir -p "$RDIR/dist"
  sv_fetch_once "$RDIR/.dist.lock" dist_fetched fetch_dist
}

check_java() {
  local v
  v=$("$JAVA" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
  [[ $v =~ ^[0-9]+$ ]] || die "cannot run $JAVA (need Java 17+)"
  ((v >= 17)) || die "$JAVA is Java $v; the registry needs Java 17+ (set JAVA_HOME)"
}

# ---------------------------------------------------------------- names and ports

# use_name ARG: NAME, its run dir RUN, and its registry as the supervised unit.
use_name() {
  sv_set_name "$1"
  sv_unit "$RUN" registry "registry $NAME" "$RUN/logs/registry.log"
}

load_env() { sv_load registry.env "no registry named $NAME (run: scripts/registry.sh up $NAME BOOTSTRAP)"; }

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
  sv_new_instance "$OWNER_PID"
}

# the class-data-sharing archive of the distribution (none with REGISTRY_CDS=0)
cds_archive() { if [[ ${REGISTRY_CDS:-1} == 1 ]]; then echo "$DIST/registry.jsa"; fi; }

# launch: start the registry and wait until it is ready. Returns sv_wait_ready's code.
launch() {
  local rc=0 record=1
  ensure_dist
  check_java
  mkdir -p "$RUN/logs" "$RUN/tmp"
  # the first registry on this distribution records the class-data-sharing archive when it exits
  # (~3s slower start, ~5s slower stop, once). Not under CI: its fresh clone would pay that on
  # every run.
  [[ ${CI:-} == true ]] && record=0
  sv_cds_opts "$(cds_archive)" "$record"
  echo "=== $(date '+%F %T') start: port $REGISTRY_PORT, bootstrap $REGISTRY_BOOTSTRAP, topic $REGISTRY_TOPIC ===" \
    >>"$RUN/logs/registry.log"
  # (started in $RUN: Quarkus reads ./config/application.properties)
  sv_launch 'in use' api_ready -- \
    "$JAVA" "${HEAP_OPTS[@]}" "${JVM_OPTS[@]}" "${CDS_OPTS[@]}" \
    "$(sv_marker)" -Djava.io.tmpdir="$RUN/tmp" \
    -Dquarkus.http.port="$REGISTRY_PORT" \
    -Dapicurio.kafkasql.bootstrap.servers="$REGISTRY_BOOTSTRAP" \
    -Dapicurio.kafkasql.topic="$REGISTRY_TOPIC" \
    -Dapicurio.kafkasql.snapshots.topic="${REGISTRY_TOPIC}_snapshots" \
    -Dapicurio.events.kafka.topic="${REGISTRY_TOPIC}_events" \
    -Dapicurio.events.kafka.config.bootstrap.servers="$REGISTRY_BOOTSTRAP" \
    -Dapicurio.storage.snapshot.location="$RUN/snapshots" \
    -jar "$DIST/$APICURIO_RUNNER" || rc=$?
  if ((rc == 0)); then
    set_compat
    sv_watchdog "$OWNER_PID"
  fi
  return "$rc"
}

# ---------------------------------------------------------------- commands

cmd_up() {
  local attempt rc t0=$SECONDS
  use_name "${1:-}"
  BOOTSTRAP=${2:-}
  [[ $BOOTSTRAP =~ ^[^[:space:],]+:[0-9]+(,[^[:space:],]+:[0-9]+)*$ ]] \
    || die "usage: scripts/registry.sh up NAME BOOTSTRAP (BOOTSTRAP like 127.0.0.1:9092, got '$BOOTSTRAP')"
  sv_lock
  broker_answers || die "the Kafka broker $BOOTSTRAP does not accept connections (start it first: scripts/kafka.sh up NAME)"
  if sv_pid >/dev/null; then
    load_env
    if [[ $REGISTRY_BOOTSTRAP == "$BOOTSTRAP" && $REGISTRY_TOPIC == "$TOPIC" ]]; then
      echo "REGISTRY_URL=$(url)"
      return 0
    fi
    log "registry $NAME runs against $REGISTRY_BOOTSTRAP (topic $REGISTRY_TOPIC); restarting it against $BOOTSTRAP (topic $TOPIC)"
    sv_stop
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
    if [[ -z $PORT ]]; then sv_free_ports 1; PORT=${PORTS[0]}; fi
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
      1) sv_log_tail 80; rm -f "$UNIT_PIDFILE"; die "registry $NAME exited during startup (log: $RUN/logs/registry.log)" ;;
      *) die "registry $NAME did not start (log: $RUN/logs/registry.log)" ;;
    esac
  done
  die "registry $NAME: could not bind a free port after 3 attempts"
}

cmd_down() { use_name "${1:-}"; sv_cmd_down "$NAME" sv_stop registry; }

cmd_down_all() { sv_cmd_down_all; }

cmd_url() {
  use_name "${1:-}"
  sv_pid >/dev/null || { log "registry $NAME is not running"; return 1; }
  load_env
  url
}

cmd_addr() { cmd_url "$@"; }

cmd_status() {
  local name pid state
  for name in $(sv_names); do
    use_name "$name"
    REGISTRY_PORT='?' REGISTRY_BOOTSTRAP='?'
    # shellcheck disable=SC1091
    [[ -f $RUN/registry.env ]] && source "$RUN/registry.env"
    if pid=$(sv_pid); then state=running; else state=stopped pid=-; fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$NAME" "$state" "$(url)" "$REGISTRY_BOOTSTRAP" "$pid"
  done
}

cmd_list() { cmd_status; }

cmd_logs() {
  use_name "${1:-}"
  tail -n "${REGISTRY_LOG_LINES:-100}" "$RUN/logs/registry.log"
}

cmd_fetch() { ensure_dist; }

sv_main "$@"
