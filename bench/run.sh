#!/usr/bin/env bash
# The flightsink benchmark (make bench): starts its own Kafka broker ("bench"),
# builds the binaries (no -race), runs every contender on the same data in one
# run, verifies what landed in Kafka, writes bench/RESULTS.md, and cleans up.
# See bench/README.md for the contenders and the knobs (BENCH_* variables).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
CACHE=${FLIGHTSINK_CACHE_DIR:-$ROOT/.cache}
NAME=${BENCH_KAFKA_NAME:-bench}
VENV=${BENCH_VENV:-$CACHE/venv}
BIN=$ROOT/bin/bench
export BENCH_WORK=${BENCH_WORK:-$CACHE/bench}
# whole-run bound (seconds); each contender is bounded by BENCH_TIMEOUT too
TOTAL_TIMEOUT=${BENCH_TOTAL_TIMEOUT:-7200}

# Kafka's own start script defaults (kafka-server-start.sh / kafka-run-class.sh), not the
# small, C1-only JVM scripts/kafka.sh uses for tests: the limit should be what Kafka can take.
export KAFKA_HEAP_OPTS=${BENCH_KAFKA_HEAP_OPTS:--Xms1g -Xmx1g}
export KAFKA_JVM_OPTS=${BENCH_KAFKA_JVM_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true}
export KAFKA_CDS=0            # leave the tests' class-data-sharing archive alone
export KAFKA_OWNER_PID=$$     # scripts/kafka.sh's watchdog downs the broker if this script dies

log() { echo "[bench] $*" >&2; }

RUNNER_PID=''
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $RUNNER_PID ]] && kill -0 "$RUNNER_PID" 2>/dev/null; then
    kill -TERM "$RUNNER_PID" 2>/dev/null || true
    wait "$RUNNER_PID" 2>/dev/null || true
  fi
  # keep the broker's logs (scripts/kafka.sh down deletes its run dir)
  if [[ -d $CACHE/kafka/run/$NAME/logs ]]; then
    rm -rf "$BENCH_WORK/logs/broker" && mkdir -p "$BENCH_WORK/logs" &&
      cp -r "$CACHE/kafka/run/$NAME/logs" "$BENCH_WORK/logs/broker" 2>/dev/null || true
  fi
  if [[ ${BENCH_KEEP_BROKER:-0} != 1 ]]; then
    bash scripts/kafka.sh down "$NAME" >/dev/null 2>&1 || log "could not stop broker $NAME (scripts/kafka.sh down $NAME)"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- Python: the venv make test uses (pyarrow, confluent-kafka)
if ! "$VENV/bin/python" -c 'import pyarrow, pyarrow.flight, confluent_kafka' 2>/dev/null; then
  log "creating the Python venv $VENV (tests/python/requirements.txt)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r tests/python/requirements.txt
fi

# ---- binaries, without -race
log "building bin/bench/{flightsink,limit,goclient,benchrun}"
mkdir -p "$BIN"
go build -o "$BIN/flightsink" ./cmd/flightsink
go build -o "$BIN/limit" ./bench/cmd/limit
go build -o "$BIN/goclient" ./bench/cmd/goclient
go build -o "$BIN/benchrun" ./bench/cmd/benchrun

# ---- a fresh broker
bash scripts/kafka.sh down "$NAME" >/dev/null 2>&1 || true
log "starting Kafka broker $NAME"
addr_line=$(bash scripts/kafka.sh up "$NAME" | tail -n 1)
[[ $addr_line == KAFKA_BROKERS=* ]] || { log "scripts/kafka.sh up $NAME printed: $addr_line"; exit 1; }
export BENCH_BROKERS=${addr_line#KAFKA_BROKERS=}
export BENCH_BROKER_PID
BENCH_BROKER_PID=$(<"$CACHE/kafka/run/$NAME/kafka.pid")
export BENCH_KAFKA_LIB=$CACHE/kafka/lib
export BENCH_KAFKA_JVM="$KAFKA_HEAP_OPTS $KAFKA_JVM_OPTS"
export BENCH_PYTHON=$VENV/bin/python
export BENCH_PYCLIENT=$ROOT/bench/pyclient.py
export BENCH_SERVER_BIN=$BIN/flightsink BENCH_LIMIT_BIN=$BIN/limit BENCH_GOCLIENT_BIN=$BIN/goclient
export BENCH_OUT=${BENCH_OUT:-$ROOT/bench/RESULTS.md}
log "broker $NAME on $BENCH_BROKERS (pid $BENCH_BROKER_PID)"

timeout --signal=TERM --kill-after=30 "$TOTAL_TIMEOUT" "$BIN/benchrun" &
RUNNER_PID=$!
rc=0
wait "$RUNNER_PID" || rc=$?
RUNNER_PID=''
((rc == 124)) && log "the whole run exceeded BENCH_TOTAL_TIMEOUT=${TOTAL_TIMEOUT}s"
exit "$rc"
