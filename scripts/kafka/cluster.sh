# shellcheck shell=bash
# The multi-node part of scripts/kafka.sh (sourced by it, not run): `up NAME --brokers N` and the
# commands on one node of such a NAME. Everything a single node does (classpath, readiness, CDS,
# the supervisor of scripts/supervise.sh) is kafka.sh's; this file adds the cluster's layout.
#
# A cluster NAME: N KRaft nodes, each broker and controller (node.id 1..N, static voters), and one
# toxiproxy server in front of every listener, so tests can slow, cut or reset the network of one
# node. Run dir $RUNS/NAME:
#   cluster.env          NODES, TOXIPROXY_PORT, KAFKA_BROKERS (the client proxies), owner/instance
#   proxy/               toxiproxy.json (the proxies), toxiproxy.pid, toxiproxy.log
#   nodeI/               server.properties, broker.env, data/, logs/server.log, kafka.pid
# Ports of node I (broker.env): KAFKA_PORT (CLIENT listener), KAFKA_INTERNAL_PORT (inter-broker),
# KAFKA_CONTROLLER_PORT (KRaft), each reached only through a proxy (toxiproxy.json):
#   nodeI-client          what clients use: advertised CLIENT listener, printed in KAFKA_BROKERS
#   nodeI-internal        the advertised INTERNAL listener: replica fetches from node I's leaders
#   nodeJ-to-nodeI-ctrl   node J's controller traffic to node I (votes, fetches, broker heartbeats):
#                         one proxy per ordered pair, as each node lists the voters at addresses of
#                         its own (controller.quorum.voters), so node I's KRaft traffic can be cut
#                         in both directions
# A client-only cut of node I is a toxic on nodeI-client; full isolation also cuts nodeI-internal
# and every nodeJ-to-nodeI-ctrl and nodeI-to-nodeJ-ctrl proxy: node I then cannot heartbeat to the
# controller, which fences it and moves its leaderships away. (Node I's own replica fetches from
# other leaders go through their nodeJ-internal proxies and are not cut; a fenced broker does not
# rejoin an ISR.)

TOXIPROXY_VERSION=v2.5.0 # as go.mod's github.com/Shopify/toxiproxy/v2 (the tests' client)
TOXIPROXY_BIN=$KDIR/bin/toxiproxy-server-$TOXIPROXY_VERSION

# ---------------------------------------------------------------- layout

is_cluster() { [[ -f $RUN/cluster.env ]]; }

load_cluster() { sv_load cluster.env "no cluster named $NAME (run: scripts/kafka.sh up $NAME --brokers 3)"; }

# use_node I: node I of the cluster NAME as the supervised unit (NODE_RUN, its dir).
use_node() {
  [[ $1 =~ ^[0-9]+$ && $1 -ge 1 && $1 -le $NODES ]] || die "no node $1 in cluster $NAME (nodes 1..$NODES)"
  NODE=$1 NODE_RUN=$RUN/node$1
  sv_unit "$NODE_RUN" kafka "broker $NAME node $1" "$NODE_RUN/logs/server.log" "$NODE_RUN/logs/kafka.out"
}

use_proxy() { sv_unit "$RUN/proxy" toxiproxy "toxiproxy of $NAME" "$RUN/proxy/toxiproxy.log"; }

# ---------------------------------------------------------------- toxiproxy

toxiproxy_built() { [[ -x $TOXIPROXY_BIN ]]; }

build_toxiproxy() {
  local tmp
  command -v go >/dev/null || die "go not found: the cluster's network proxies are built from github.com/Shopify/toxiproxy/v2"
  tmp=$(mktemp -d "$KDIR/toxi.tmp.XXXXXX")
  log "building toxiproxy-server $TOXIPROXY_VERSION into $KDIR/bin (once)..."
  if ! (cd "$tmp" && GOBIN=$tmp GOFLAGS='' go install "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION") >&2; then
    rm -rf "$tmp"
    die "go install github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION failed"
  fi
  mkdir -p "$KDIR/bin"
  mv "$tmp/server" "$TOXIPROXY_BIN"
  rm -rf "$tmp"
}

toxiproxy_ready() { curl -sf "http://127.0.0.1:$TOXIPROXY_PORT/version" >/dev/null; }

# proxy_json: every proxy of the cluster (see the header).
proxy_json() {
  local i j sep='' pk
  echo '['
  for ((i = 1; i <= NODES; i++)); do
    # shellcheck disable=SC1090
    source "$RUN/node$i/broker.env"
    printf '%s{"name":"node%d-client","listen":"127.0.0.1:%s","upstream":"127.0.0.1:%s","enabled":true}\n' \
      "$sep" "$i" "$KAFKA_PROXY_PORT" "$KAFKA_PORT"
    sep=,
    printf ',{"name":"node%d-internal","listen":"127.0.0.1:%s","upstream":"127.0.0.1:%s","enabled":true}\n' \
      "$i" "$KAFKA_INTERNAL_PROXY_PORT" "$KAFKA_INTERNAL_PORT"
    for ((j = 1; j <= NODES; j++)); do
      ((i == j)) && continue
      pk=CTRL_PROXY_${j}_$i
      printf ',{"name":"node%d-to-node%d-ctrl","listen":"127.0.0.1:%s","upstream":"127.0.0.1:%s","enabled":true}\n' \
        "$j" "$i" "${!pk}" "$KAFKA_CONTROLLER_PORT"
    done
  done
  echo ']'
}

start_proxy() {
  local rc=0 i
  use_proxy
  sv_launch 'address already in use' toxiproxy_ready -- \
    env LOG_LEVEL=warn "$TOXIPROXY_BIN" -host 127.0.0.1 -port "$TOXIPROXY_PORT" \
    -config "$RUN/proxy/toxiproxy.json" -- "$(sv_marker)" || rc=$?
  ((rc == 0)) || { sv_log_tail 20; die "toxiproxy of $NAME did not start"; }
  for ((i = 1; i <= NODES; i++)); do # every proxy listens (none lost a port to another process)
    # shellcheck disable=SC1090
    source "$RUN/node$i/broker.env"
    port_listening "$KAFKA_PROXY_PORT" || { sv_log_tail 20; die "toxiproxy of $NAME: proxy node$i-client does not listen"; }
  done
}

# ---------------------------------------------------------------- nodes

# write_cluster_config: ports, cluster.env, each node's server.properties and the proxies.
write_cluster_config() {
  local i j k voters
  rm -rf "$RUN"
  mkdir -p "$RUN/proxy"
  sv_free_ports $((1 + NODES * 5 + NODES * (NODES - 1)))
  TOXIPROXY_PORT=${PORTS[0]}
  k=1
  KAFKA_BROKERS=''
  for ((i = 1; i <= NODES; i++)); do
    mkdir -p "$RUN/node$i/data" "$RUN/node$i/logs"
    cat >"$RUN/node$i/broker.env" <<EOF
KAFKA_PORT=${PORTS[k]}
KAFKA_INTERNAL_PORT=${PORTS[k + 1]}
KAFKA_CONTROLLER_PORT=${PORTS[k + 2]}
KAFKA_PROXY_PORT=${PORTS[k + 3]}
KAFKA_INTERNAL_PROXY_PORT=${PORTS[k + 4]}
EOF
    KAFKA_BROKERS+=${KAFKA_BROKERS:+,}127.0.0.1:${PORTS[k + 3]}
    k=$((k + 5))
  done
  for ((i = 1; i <= NODES; i++)); do
    for ((j = 1; j <= NODES; j++)); do
      ((i == j)) && continue
      declare -g "CTRL_PROXY_${i}_$j=${PORTS[k]}"
      echo "CTRL_PROXY_${i}_$j=${PORTS[k]}" >>"$RUN/cluster.ports"
      k=$((k + 1))
    done
  done
  cat >"$RUN/cluster.env" <<EOF
NODES=$NODES
TOXIPROXY_PORT=$TOXIPROXY_PORT
KAFKA_BROKERS=$KAFKA_BROKERS
EOF
  cat "$RUN/cluster.ports" >>"$RUN/cluster.env"
  rm -f "$RUN/cluster.ports"
  for ((i = 1; i <= NODES; i++)); do
    voters=''
    for ((j = 1; j <= NODES; j++)); do
      # shellcheck disable=SC1090
      source "$RUN/node$j/broker.env"
      if ((i == j)); then
        voters+=${voters:+,}$j@127.0.0.1:$KAFKA_CONTROLLER_PORT
      else
        k=CTRL_PROXY_${i}_$j
        voters+=${voters:+,}$j@127.0.0.1:${!k}
      fi
    done
    # shellcheck disable=SC1090
    source "$RUN/node$i/broker.env"
    write_node_config "$i" "$voters"
  done
  proxy_json >"$RUN/proxy/toxiproxy.json"
  sv_new_instance "${KAFKA_OWNER_PID:-}"
}

# write_node_config I VOTERS: server.properties of node I (its ports loaded).
write_node_config() {
  local min_isr=$((NODES > 2 ? 2 : 1))
  cat >"$RUN/node$1/server.properties" <<EOF
# written by scripts/kafka.sh for node $1 of the local test cluster "$NAME"
process.roles=broker,controller
node.id=$1
controller.quorum.voters=$2
listeners=CLIENT://127.0.0.1:$KAFKA_PORT,INTERNAL://127.0.0.1:$KAFKA_INTERNAL_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=CLIENT://127.0.0.1:$KAFKA_PROXY_PORT,INTERNAL://127.0.0.1:$KAFKA_INTERNAL_PROXY_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=INTERNAL
listener.security.protocol.map=CONTROLLER:PLAINTEXT,CLIENT:PLAINTEXT,INTERNAL:PLAINTEXT
log.dirs=$RUN/node$1/data

# replication $NODES, min.insync.replicas $min_isr: an acknowledged write survives the loss of one node;
# the same for the internal topics (and flightsink's own, created with the broker's default)
num.partitions=1
default.replication.factor=$NODES
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$NODES
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=$NODES
transaction.state.log.min.isr=$min_isr
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=$NODES
share.coordinator.state.topic.min.isr=$min_isr
share.coordinator.state.topic.num.partitions=1
unclean.leader.election.enable=false
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
transaction.abort.timed.out.transaction.cleanup.interval.ms=1000
log.retention.ms=-1
log.retention.check.interval.ms=10000
# a stalled follower leaves the ISR after 10 s (default 30 s)
replica.lag.time.max.ms=10000

# small and quick on a 2-core machine
num.network.threads=2
num.io.threads=2
background.threads=2
num.replica.fetchers=1
num.recovery.threads.per.data.dir=1
log.cleaner.dedupe.buffer.size=16777216
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=6000
EOF
  if [[ -n ${KAFKA_EXTRA_PROPS:-} ]]; then
    printf '\n# KAFKA_EXTRA_PROPS\n%s\n' "$KAFKA_EXTRA_PROPS" >>"$RUN/node$1/server.properties"
  fi
}

format_node() {
  sv_cds_opts "$(cds_archive)"
  if ! "$JAVA" "${JVM_OPTS[@]}" "${CDS_OPTS[@]}" -Xmx256m -Dkafka.logs.dir="$NODE_RUN/logs" \
      -Dlog4j2.configurationFile="$LOG4J_CONF" -cp "$LIB/*" \
      kafka.tools.StorageTool format --cluster-id="$1" \
      -c "$NODE_RUN/server.properties" >"$NODE_RUN/logs/format.out" 2>&1; then
    cat "$NODE_RUN/logs/format.out" >&2
    die "StorageTool format of node $NODE failed"
  fi
}

node_ready() { sv_log_has "$UNIT_LOG_OFFSET" 'Kafka Server started' && api_versions_ok "$KAFKA_PORT"; }

# spawn_node: start node NODE without waiting (its log offset in OFFSETS[NODE]).
spawn_node() {
  # shellcheck disable=SC1091
  source "$NODE_RUN/broker.env"
  mkdir -p "$NODE_RUN/logs"
  echo "=== $(date '+%F %T') start ===" >>"$NODE_RUN/logs/kafka.out"
  touch "$UNIT_LOG"
  OFFSETS[NODE]=$(stat -c %s "$UNIT_LOG")
  sv_cds_opts "$(cds_archive)"
  sv_spawn "$JAVA" "${HEAP_OPTS[@]}" "${JVM_OPTS[@]}" "${CDS_OPTS[@]}" \
    "$(sv_marker)" -Dkafka.logs.dir="$NODE_RUN/logs" \
    -Dlog4j2.configurationFile="$LOG4J_CONF" \
    -cp "$LIB/*" kafka.Kafka "$NODE_RUN/server.properties"
}

# wait_node: wait until node NODE (spawned) is ready; a node that died or never got ready fails.
wait_node() {
  local pid rc=0
  # shellcheck disable=SC1091
  source "$NODE_RUN/broker.env"
  UNIT_LOG_OFFSET=${OFFSETS[NODE]}
  pid=$(sv_pid) || { sv_log_tail 60; die "node $NODE of $NAME exited during startup"; }
  sv_wait_ready "$pid" 'Address already in use' node_ready || rc=$?
  case $rc in
    0) ;;
    2) sv_log_tail 60; die "node $NODE of $NAME not ready after ${READY_TIMEOUT}s (a majority of the nodes must run)" ;;
    *) sv_log_tail 60; die "node $NODE of $NAME exited during startup" ;;
  esac
}

# ---------------------------------------------------------------- commands

# cluster_up N: create and start the cluster NAME (locked), or start what of it is stopped.
cluster_up() {
  local i t0=$SECONDS cid
  declare -g -a OFFSETS=()
  NODES=$1
  ensure_lib
  sv_fetch_once "$KDIR/.toxiproxy.lock" toxiproxy_built build_toxiproxy
  if [[ -f $RUN/cluster.env ]]; then
    load_cluster
    [[ $NODES == "$1" ]] || die "cluster $NAME has $NODES nodes, not $1 (down it first)"
    log "starting existing cluster $NAME (data kept)"
  else
    [[ ! -d $RUN ]] || die "$NAME is a single broker (down it first)"
    write_cluster_config
    cid=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    for ((i = 1; i <= NODES; i++)); do use_node "$i"; format_node "$cid"; done
  fi
  use_proxy
  sv_pid >/dev/null || start_proxy
  for ((i = 1; i <= NODES; i++)); do
    use_node "$i"
    sv_pid >/dev/null || spawn_node
  done
  for ((i = 1; i <= NODES; i++)); do
    use_node "$i"
    [[ -n ${OFFSETS[i]:-} ]] && wait_node
  done
  sv_watchdog "${KAFKA_OWNER_PID:-}"
  log "cluster $NAME ($NODES nodes) ready in $((SECONDS - t0))s (run dir $RUN)"
  print_cluster
}

print_cluster() {
  echo "TOXIPROXY_URL=http://127.0.0.1:$TOXIPROXY_PORT"
  echo "KAFKA_BROKERS=$KAFKA_BROKERS"
}

# cluster_node CMD NODE: stop|start|kill|pause|resume one node (locked).
cluster_node() {
  local pid
  load_cluster
  use_node "$2"
  case $1 in
    stop) sv_stop; log "stopped node $NODE of $NAME" ;;
    start)
      if ! sv_pid >/dev/null; then
        declare -g -a OFFSETS=()
        spawn_node
        wait_node
      fi
      log "node $NODE of $NAME runs" ;;
    kill)
      if pid=$(sv_pid); then
        kill -KILL "$pid"
        while alive "$pid"; do sleep 0.05; done
      fi
      rm -f "$UNIT_PIDFILE" "$UNIT_JSA"
      log "killed node $NODE of $NAME (SIGKILL)" ;;
    pause | resume)
      pid=$(sv_pid) || die "node $NODE of $NAME is not running"
      if [[ $1 == pause ]]; then kill -STOP "$pid"; else kill -CONT "$pid"; fi
      log "${1}d node $NODE of $NAME (pid $pid)" ;;
  esac
}

# cluster_stop_all: stop every node (resumed first: a paused JVM cannot act on SIGTERM), then the proxy.
cluster_stop_all() {
  local i pid
  load_cluster
  for ((i = 1; i <= NODES; i++)); do
    use_node "$i"
    if pid=$(sv_pid); then kill -CONT "$pid" 2>/dev/null || true; fi
  done
  for ((i = 1; i <= NODES; i++)); do
    use_node "$i"
    sv_stop &
  done
  wait
  use_proxy
  sv_stop 5
}

cluster_status() {
  local i pid state
  load_cluster
  for ((i = 1; i <= NODES; i++)); do
    use_node "$i"
    # shellcheck disable=SC1091
    source "$NODE_RUN/broker.env"
    if pid=$(sv_pid); then state=running; else state=stopped pid=-; fi
    [[ $state == running && $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == T ]] && state=paused
    printf '%s/node%d\t%s\t127.0.0.1:%s\t%s\n' "$NAME" "$i" "$state" "$KAFKA_PROXY_PORT" "$pid"
  done
}
