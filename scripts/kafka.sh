#!/usr/bin/env bash
# Run a real Apache Kafka 4.x (KRaft, combined broker+controller) on 127.0.0.1
# without Docker, from the jars of scripts/kafka/pom.xml: one node, or with
# --brokers N a cluster of N behind network proxies (for the fault tests).
#
#   scripts/kafka.sh up    [NAME]   create+start NAME (default "default"); start it again
#                                   if it exists but is stopped; no-op if running.
#                                   Last stdout line: KAFKA_BROKERS=127.0.0.1:PORT
#   scripts/kafka.sh up NAME --brokers N
#                                   N > 1: a cluster of N KRaft nodes (broker+controller each,
#                                   replication N, min.insync.replicas 2) behind a toxiproxy per
#                                   listener (scripts/kafka/cluster.sh says which). Prints
#                                   TOXIPROXY_URL=http://127.0.0.1:PORT, then last
#                                   KAFKA_BROKERS=127.0.0.1:PORT,127.0.0.1:PORT,...
#   scripts/kafka.sh stop|start|kill|pause|resume NAME NODE
#                                   act on node NODE (1..N) of a cluster: stop (SIGTERM), start
#                                   (and wait until ready), kill (SIGKILL), pause (SIGSTOP),
#                                   resume (SIGCONT)
#   scripts/kafka.sh stop  [NAME]   stop the broker, keep its data, ports and config
#   scripts/kafka.sh start [NAME]   start a stopped NAME on the SAME ports and log dir
#                                   (prints KAFKA_BROKERS=... like up)
#   scripts/kafka.sh down  [NAME]   stop it and delete its run dir
#   scripts/kafka.sh addr  [NAME]   print 127.0.0.1:PORT if running (exit 1 if not)
#   scripts/kafka.sh status|list    one line per NAME: name, state, address, pid
#   scripts/kafka.sh logs  [NAME] [NODE]  print the tail of its server.log (of node NODE, default 1)
#   scripts/kafka.sh down-all       down every NAME
#   scripts/kafka.sh fetch          only fetch the jars into .cache/kafka/lib
#   scripts/kafka.sh java CLASS ARGS...
#                                   run a class from the Kafka classpath, e.g.
#                                   org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:PORT --list
#
# Everything lives under <repo>/.cache/kafka (or $FLIGHTSINK_CACHE_DIR/kafka):
#   lib/          runtime classpath (fetched once with Maven, refetched when pom.xml changes)
#   run/NAME/     server.properties, broker.env (ports), data/, logs/server.log, logs/kafka.out, kafka.pid,
#                 owner (the KAFKA_OWNER_PID it was started for); a cluster: cluster.env, proxy/, nodeI/
#   bin/          toxiproxy-server (built once with go install, for clusters)
#
# Environment knobs:
#   KAFKA_READY_TIMEOUT   seconds to wait for readiness (default 90)
#   KAFKA_STOP_TIMEOUT    seconds to wait after SIGTERM before SIGKILL (default 30)
#   KAFKA_HEAP_OPTS       default "-Xms64m -Xmx512m"
#   KAFKA_JVM_OPTS        default: serial GC, C1 only, no perf data (small and fast to start)
#   KAFKA_EXTRA_PROPS     extra server.properties lines (key=value, newline separated), applied
#                         when NAME is created; later keys override the defaults
#   KAFKA_SASL            1: NAME also gets a SASL_PLAINTEXT listener (PLAIN, SCRAM-SHA-256,
#                         SCRAM-SHA-512) with user "flightsink", password "flightsink-secret";
#                         up/start then also print KAFKA_SASL_BROKERS=127.0.0.1:PORT
#   KAFKA_TLS             1: NAME also gets an SSL listener with a self-signed certificate for
#                         127.0.0.1/localhost (run/NAME/tls/ca.pem verifies it); up/start then
#                         also print KAFKA_TLS_BROKERS=127.0.0.1:PORT and KAFKA_TLS_CA=PATH
#   KAFKA_OWNER_PID       if set, a watchdog runs `down NAME` once that process has exited
#                         (Go tests: set it to os.Getpid() so a killed test leaves no broker)
#   KAFKA_CDS             1 (default): the first broker that stops cleanly leaves a class-data-sharing
#                         archive in lib/ (kafka.jsa) that makes later JVM starts ~1s faster; 0: off
#   JAVA_HOME             java to use (default: java on PATH; Kafka 4 needs Java 17+)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
SELF=$ROOT/scripts/kafka.sh
POM=$ROOT/scripts/kafka/pom.xml
LOG4J_CONF=$ROOT/scripts/kafka/log4j2.properties
CACHE=${FLIGHTSINK_CACHE_DIR:-$ROOT/.cache}
KDIR=$CACHE/kafka
LIB=$KDIR/lib
RUNS=$KDIR/run
DEFAULT_NAME=default
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java
READY_TIMEOUT=${KAFKA_READY_TIMEOUT:-90}
STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}
read -r -a HEAP_OPTS <<<"${KAFKA_HEAP_OPTS:--Xms64m -Xmx512m}"
read -r -a JVM_OPTS <<<"${KAFKA_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true}"

# shellcheck source=scripts/supervise.sh
source "$ROOT/scripts/supervise.sh"
# shellcheck source=scripts/kafka/cluster.sh
source "$ROOT/scripts/kafka/cluster.sh"

# ---------------------------------------------------------------- classpath

lib_stamp() { cksum <"$POM" | cut -d' ' -f1; }

lib_fetched() { [[ -f $LIB/.stamp && $(<"$LIB/.stamp") == "$(lib_stamp)" ]]; }

fetch_lib() {
  local tmp
  tmp=$(mktemp -d "$KDIR/lib.tmp.XXXXXX")
  log "fetching the Kafka classpath with Maven into $LIB (once)..."
  if ! mvn -B -q -Dstyle.color=never -f "$POM" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$tmp" >&2; then
    rm -rf "$tmp"
    die "mvn dependency:copy-dependencies failed (see above)"
  fi
  rm -rf "$ROOT/scripts/kafka/target"
  lib_stamp >"$tmp/.stamp"
  rm -rf "$LIB"
  mv "$tmp" "$LIB"
}

ensure_lib() { sv_fetch_once "$KDIR/.lib.lock" lib_fetched fetch_lib; }

# the class-data-sharing archive of lib/ (none with KAFKA_CDS=0)
cds_archive() { if [[ ${KAFKA_CDS:-1} == 1 ]]; then echo "$LIB/kafka.jsa"; fi; }

# ---------------------------------------------------------------- names and ports

# use_name ARG: NAME, its run dir RUN, and its broker as the supervised unit.
use_name() {
  sv_set_name "$1"
  sv_unit "$RUN" kafka "broker $NAME" "$RUN/logs/server.log" "$RUN/logs/kafka.out"
}

load_ports() { sv_load broker.env "no broker named $NAME (run: scripts/kafka.sh up $NAME)"; }

# PORT (clients), CPORT (controller) and, with KAFKA_SASL=1 or KAFKA_TLS=1, SPORT
pick_ports() {
  local n=2
  [[ ${KAFKA_SASL:-0} == 1 || ${KAFKA_TLS:-0} == 1 ]] && n=3
  sv_free_ports "$n"
  PORT=${PORTS[0]} CPORT=${PORTS[1]} SPORT=${PORTS[2]:-}
}

# ---------------------------------------------------------------- readiness

# A real Kafka round trip: ApiVersions (api key 18, v0, correlation id "KAFK");
# ready when the answer carries our correlation id and error_code 0. The broker
# only answers requests once its startup is complete (unfenced).
api_versions_ok() {
  local out
  # shellcheck disable=SC2016 # expanded by the inner bash
  out=$(timeout 3 bash -c '
      exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
      printf "\x00\x00\x00\x0e\x00\x12\x00\x00\x4b\x41\x46\x4b\x00\x04prob" >&3
      head -c 10 <&3' _ "$1" 2>/dev/null | od -An -tx1 | tr -d ' \n') || return 1
  [[ $out == ????????4b41464b0000 ]]
}

broker_ready() { sv_log_has "$UNIT_LOG_OFFSET" 'Kafka Server started' && api_versions_ok "$KAFKA_PORT"; }

# ---------------------------------------------------------------- start / stop

write_config() {
  mkdir -p "$RUN/data" "$RUN/logs"
  cat >"$RUN/broker.env" <<EOF
KAFKA_PORT=$PORT
KAFKA_CONTROLLER_PORT=$CPORT
KAFKA_SASL_PORT=$([[ ${KAFKA_SASL:-0} == 1 ]] && echo "$SPORT")
KAFKA_TLS_PORT=$([[ ${KAFKA_TLS:-0} == 1 ]] && echo "$SPORT")
EOF
  cat >"$RUN/server.properties" <<EOF
# written by scripts/kafka.sh for the local test broker "$NAME"
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$RUN/data

# one node: every internal topic with replication factor 1, so transactions work
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
# abort transactions past their timeout within a second (default: every 10 s),
# so tests of kafka.transaction_timeout do not wait long
transaction.abort.timed.out.transaction.cleanup.interval.ms=1000
# no time-based retention: test and benchmark rows carry timestamps from early
# 2026, which the default 7 days would delete within minutes (record
# timestamps, not arrival, decide); size-based retention (the benchmark's soak
# topic sets retention.bytes) is applied every 10 s (default: 5 min)
log.retention.ms=-1
log.retention.check.interval.ms=10000

# small and quick on a 2-core machine
num.network.threads=2
num.io.threads=4
background.threads=4
num.recovery.threads.per.data.dir=1
log.cleaner.dedupe.buffer.size=16777216
broker.heartbeat.interval.ms=500
EOF
  if [[ -n $SPORT && ${KAFKA_TLS:-0} == 1 ]]; then
    mkdir -p "$RUN/tls"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$RUN/tls/key.pem" -out "$RUN/tls/ca.pem" -days 2 \
      -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >/dev/null 2>&1 ||
      die "openssl could not make the test certificate"
    openssl pkcs8 -topk8 -nocrypt -in "$RUN/tls/key.pem" -out "$RUN/tls/key8.pem" || die "openssl pkcs8 failed"
    cat "$RUN/tls/key8.pem" "$RUN/tls/ca.pem" >"$RUN/tls/server.pem"
    cat >>"$RUN/server.properties" <<EOF

# KAFKA_TLS=1: an SSL listener for the security tests
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT,SSL://127.0.0.1:$SPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT,SSL://127.0.0.1:$SPORT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL
listener.name.ssl.ssl.keystore.type=PEM
listener.name.ssl.ssl.keystore.location=$RUN/tls/server.pem
EOF
  elif [[ -n $SPORT ]]; then
    cat >>"$RUN/server.properties" <<EOF

# KAFKA_SASL=1: a SASL_PLAINTEXT listener for the security tests
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT,SASL_PLAINTEXT://127.0.0.1:$SPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT,SASL_PLAINTEXT://127.0.0.1:$SPORT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_flightsink="flightsink-secret";
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
EOF
  fi
  if [[ -n ${KAFKA_EXTRA_PROPS:-} ]]; then
    printf '\n# KAFKA_EXTRA_PROPS\n%s\n' "$KAFKA_EXTRA_PROPS" >>"$RUN/server.properties"
  fi
  sv_new_instance "${KAFKA_OWNER_PID:-}"
}

format_storage() {
  local cluster_id
  # a Kafka Uuid: 16 random bytes, base64url without padding (what `StorageTool random-uuid` prints)
  # (passed as --cluster-id=ID: an id that starts with "-" would otherwise read as an option)
  cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
  sv_cds_opts "$(cds_archive)"
  local scram=()
  if [[ -n ${KAFKA_SASL_PORT:-} ]]; then
    scram=(--add-scram 'SCRAM-SHA-256=[name=flightsink,password=flightsink-secret]'
           --add-scram 'SCRAM-SHA-512=[name=flightsink,password=flightsink-secret]')
  fi
  if ! "$JAVA" "${JVM_OPTS[@]}" "${CDS_OPTS[@]}" -Xmx256m -Dkafka.logs.dir="$RUN/logs" \
      -Dlog4j2.configurationFile="$LOG4J_CONF" -cp "$LIB/*" \
      kafka.tools.StorageTool format --standalone --cluster-id="$cluster_id" "${scram[@]}" \
      -c "$RUN/server.properties" >"$RUN/logs/format.out" 2>&1; then
    cat "$RUN/logs/format.out" >&2
    die "StorageTool format failed"
  fi
}

# launch: start the broker and wait until it is ready. Returns sv_wait_ready's code.
launch() {
  local rc=0
  mkdir -p "$RUN/logs"
  echo "=== $(date '+%F %T') start ===" >>"$RUN/logs/kafka.out"
  # the first broker on this classpath records the class-data-sharing archive of lib/
  sv_cds_opts "$(cds_archive)" 1
  sv_launch 'Address already in use' broker_ready -- \
    "$JAVA" "${HEAP_OPTS[@]}" "${JVM_OPTS[@]}" "${CDS_OPTS[@]}" \
    "$(sv_marker)" -Dkafka.logs.dir="$RUN/logs" \
    -Dlog4j2.configurationFile="$LOG4J_CONF" \
    -cp "$LIB/*" kafka.Kafka "$RUN/server.properties" || rc=$?
  if ((rc == 0)); then sv_watchdog "${KAFKA_OWNER_PID:-}"; fi
  return "$rc"
}

print_addr() {
  if [[ -n ${KAFKA_SASL_PORT:-} ]]; then echo "KAFKA_SASL_BROKERS=127.0.0.1:$KAFKA_SASL_PORT"; fi
  if [[ -n ${KAFKA_TLS_PORT:-} ]]; then
    echo "KAFKA_TLS_BROKERS=127.0.0.1:$KAFKA_TLS_PORT"
    echo "KAFKA_TLS_CA=$RUN/tls/ca.pem"
  fi
  echo "KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT"
}

# start_existing: start the stopped broker of $RUN on its recorded ports.
start_existing() {
  local rc=0
  load_ports
  if port_listening "$KAFKA_PORT" || port_listening "$KAFKA_CONTROLLER_PORT"; then
    die "cannot start $NAME: port $KAFKA_PORT or $KAFKA_CONTROLLER_PORT is taken by another process"
  fi
  ensure_lib
  launch || rc=$?
  case $rc in
    0) ;;
    3) sv_log_tail 40; die "cannot start $NAME: address already in use" ;;
    1) sv_log_tail 80; die "broker $NAME exited during startup" ;;
    *) die "broker $NAME did not start" ;;
  esac
}

# ---------------------------------------------------------------- commands

cmd_up() {
  local attempt rc t0=$SECONDS nodes=1
  if [[ ${2:-} == --brokers ]]; then
    nodes=${3:-}
    [[ $nodes =~ ^[1-9]$ ]] || die "--brokers takes a node count of 1 to 9, not '$nodes'"
  elif [[ $# -gt 1 ]]; then
    die "usage: scripts/kafka.sh up NAME [--brokers N]"
  fi
  use_name "${1:-}"
  sv_lock
  if ((nodes > 1)); then cluster_up "$nodes"; return; fi
  is_cluster && die "$NAME is a cluster: start it with scripts/kafka.sh up $NAME --brokers N"
  if sv_pid >/dev/null; then load_ports; print_addr; return 0; fi
  if [[ -f $RUN/broker.env && -f $RUN/data/meta.properties ]]; then
    log "starting existing broker $NAME (data kept)"
    start_existing
    print_addr
    return 0
  fi
  ensure_lib
  for attempt in 1 2 3; do
    rm -rf "$RUN"
    pick_ports
    write_config
    load_ports
    format_storage
    rc=0
    launch || rc=$?
    case $rc in
      0) log "broker $NAME ready on 127.0.0.1:$KAFKA_PORT in $((SECONDS - t0))s (run dir $RUN)"
         print_addr
         return 0 ;;
      3) log "port collision (attempt $attempt); retrying with other ports" ;;
      1) sv_log_tail 80; rm -f "$UNIT_PIDFILE"; die "broker $NAME exited during startup (run dir kept: $RUN)" ;;
      *) die "broker $NAME did not start (run dir kept: $RUN)" ;;
    esac
  done
  die "broker $NAME: could not bind free ports after 3 attempts"
}

cmd_start() {
  use_name "${1:-}"
  sv_lock
  [[ -d $RUN ]] || die "no broker named $NAME (use: scripts/kafka.sh up $NAME)"
  if is_cluster; then
    [[ -n ${2:-} ]] || die "usage: scripts/kafka.sh start $NAME NODE"
    cluster_node start "$2"
    return
  fi
  if sv_pid >/dev/null; then load_ports; print_addr; return 0; fi
  start_existing
  print_addr
}

cmd_stop() {
  use_name "${1:-}"
  sv_lock
  [[ -d $RUN ]] || { log "no broker named $NAME"; return 0; }
  if is_cluster; then
    [[ -n ${2:-} ]] || die "usage: scripts/kafka.sh stop $NAME NODE"
    cluster_node stop "$2"
    return
  fi
  sv_stop
  log "stopped $NAME (data kept in $RUN)"
}

cmd_down() { use_name "${1:-}"; sv_cmd_down "$NAME" stop_name; }

# stop_name: stop what NAME runs (one broker, or a cluster's nodes and proxy).
stop_name() { if is_cluster; then cluster_stop_all; else sv_stop; fi; }

# cluster_cmd CMD NAME NODE: CMD (kill, pause, resume) on node NODE of the cluster NAME.
cluster_cmd() {
  [[ -n ${2:-} && -n ${3:-} ]] || die "usage: scripts/kafka.sh $1 NAME NODE"
  use_name "$2"
  sv_lock
  is_cluster || die "$NAME is not a cluster (scripts/kafka.sh up $NAME --brokers 3)"
  cluster_node "$1" "$3"
}

cmd_kill() { cluster_cmd kill "$@"; }
cmd_pause() { cluster_cmd pause "$@"; }
cmd_resume() { cluster_cmd resume "$@"; }

cmd_down_all() { sv_cmd_down_all; }

cmd_addr() {
  use_name "${1:-}"
  if is_cluster; then load_cluster; echo "$KAFKA_BROKERS"; return; fi
  sv_pid >/dev/null || { log "broker $NAME is not running"; return 1; }
  load_ports
  echo "127.0.0.1:$KAFKA_PORT"
}

cmd_status() {
  local name pid state
  for name in $(sv_names); do
    use_name "$name"
    if is_cluster; then cluster_status; continue; fi
    KAFKA_PORT='?'
    # shellcheck disable=SC1091
    [[ -f $RUN/broker.env ]] && source "$RUN/broker.env"
    if pid=$(sv_pid); then state=running; else state=stopped pid=-; fi
    printf '%s\t%s\t127.0.0.1:%s\t%s\n' "$NAME" "$state" "$KAFKA_PORT" "$pid"
  done
}

cmd_list() { cmd_status; }

cmd_logs() {
  use_name "${1:-}"
  if is_cluster; then load_cluster; use_node "${2:-1}"; tail -n "${KAFKA_LOG_LINES:-100}" "$UNIT_LOG"; return; fi
  tail -n "${KAFKA_LOG_LINES:-100}" "$RUN/logs/server.log"
}

cmd_fetch() { ensure_lib; }

cmd_java() {
  [[ $# -ge 1 ]] || die "usage: scripts/kafka.sh java CLASS [ARGS...]"
  ensure_lib
  exec "$JAVA" "${JVM_OPTS[@]}" -Xmx256m \
    -Dlog4j2.configurationFile="$ROOT/scripts/kafka/tools-log4j2.properties" \
    -cp "$LIB/*" "$@"
}

sv_main "$@"
