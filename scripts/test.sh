#!/usr/bin/env bash
# `make test`: install what the tests need, start a real Kafka broker
# (scripts/kafka.sh up test) and a real schema registry on it (scripts/registry.sh up test),
# build bin/flightsink, run go vet + go test -race (of the server's module and of the Go client's,
# clients/go/fsclient), then the fault tests (tests/faults, on a three-node cluster of their
# own, started and removed by the tests), then pytest on tests/python (if it has tests), and
# always stop the registry and the broker afterwards.
# Steps that mostly wait overlap, so that the run fits a 2-core machine: the Python packages
# install while the broker and the registry start and Go builds. The fault tests run alone:
# beside the other Go tests a starved heartbeat or a slow ISR recovery failed them. Every test
# still runs, on the real brokers.
# Exits non-zero when any step failed.
#
# Exported to the tests:
#   FLIGHTSINK_TEST_BROKERS   127.0.0.1:PORT of the shared test broker
#   FLIGHTSINK_TEST_REGISTRY  base URL of the Confluent-compatible schema registry (Apicurio) that
#                             keeps its schemas on that broker: http://127.0.0.1:PORT/apis/ccompat/v7
#                             (append /subjects/..., /schemas/ids/..., /config to it)
#   FLIGHTSINK_KAFKA_SCRIPT   absolute path of scripts/kafka.sh, for tests that run their
#                             own private broker: `$FLIGHTSINK_KAFKA_SCRIPT up NAME` (last stdout
#                             line KAFKA_BROKERS=127.0.0.1:PORT), `stop NAME`, `start NAME`
#                             (same port and data), `down NAME`
#   KAFKA_OWNER_PID           this script's pid: brokers started under it are removed at its exit
#                             (they record it in run/NAME/owner) and by a watchdog once it has
#                             exited, even if it was killed; other brokers are left alone
#   FLIGHTSINK_BIN            absolute path of bin/flightsink (built before the Go tests; the
#                             tests that run the binary use it instead of building their own)
#   FLIGHTSINK_TEST_REQUIRE_TOOLS=1  tests fail, not skip, when kcat or python is missing
# Knobs: FLIGHTSINK_SKIP_INSTALL=1 skips the apt/pip installs; GO_TEST_FLAGS adds go test flags.
# Logs: .cache/go-test.log and .cache/go-test-faults.log (go test -v, whole); what a background
# step printed is in .cache/NAME.out (pip, registry) and shown when it has ended.
# shellcheck disable=SC2317 # functions run by step and by the EXIT trap
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT" || exit 1
KAFKA=$ROOT/scripts/kafka.sh
CACHE=${FLIGHTSINK_CACHE_DIR:-$ROOT/.cache} # where kafka.sh and registry.sh keep their run dirs
REGISTRY=$ROOT/scripts/registry.sh
VENV=$ROOT/.cache/venv
REQS=$ROOT/tests/python/requirements.txt

say() { echo "==> $*" >&2; }

SUDO=()
if [[ $(id -u) != 0 ]] && command -v sudo >/dev/null; then SUDO=(sudo); fi
APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null || { say "apt-get not found; install $* by hand"; return 1; }
  if ((APT_UPDATED == 0)); then
    # a failing third-party source must not stop the install
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get update -qq || true
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

install_tools() {
  if [[ ${FLIGHTSINK_SKIP_INSTALL:-0} == 1 ]]; then return 0; fi
  if ! command -v kcat >/dev/null; then
    say "installing kcat"
    apt_install kcat || return 1
  fi
  if ! command -v java >/dev/null && [[ -z ${JAVA_HOME:-} ]]; then
    say "installing a JDK (Kafka needs Java 17+)"
    apt_install openjdk-17-jdk-headless || return 1
  fi
  if ! command -v mvn >/dev/null; then
    say "installing Maven"
    apt_install maven || return 1
  fi
}

# the venv of tests/python (made again when requirements.txt or python3 changed)
install_python() {
  if [[ ${FLIGHTSINK_SKIP_INSTALL:-0} == 1 || ! -f $REQS ]]; then return 0; fi
  local stamp
  stamp="$(cksum <"$REQS") $(python3 --version 2>&1)"
  if [[ ! -x $VENV/bin/python || ! -f $VENV/.stamp || $(<"$VENV/.stamp") != "$stamp" ]]; then
    say "installing Python test deps into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV" || return 1
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQS" || return 1
    echo "$stamp" >"$VENV/.stamp"
  fi
}

# background steps (bg NAME CMD...: output in .cache/NAME.out), each in a process group of its
# own (set -m), so that the EXIT trap ends everything one started if the run ends first
declare -A BG_PIDS=()
bg() {
  local name=$1
  shift
  set -m
  "$@" </dev/null >"$ROOT/.cache/$name.out" 2>&1 &
  BG_PIDS[$name]=$!
  set +m
}
# wait_bg NAME: its exit code, after printing its output
wait_bg() {
  local rc=0
  wait "${BG_PIDS[$1]}" || rc=$?
  unset "BG_PIDS[$1]"
  cat "$ROOT/.cache/$1.out" >&2
  return "$rc"
}

# the brokers this run started (KAFKA_OWNER_PID=$$, kept in run/NAME/owner) are stopped at exit;
# other brokers in the same cache are left alone, even those started meanwhile
RUNS=$CACHE/kafka/run
owned_brokers() {
  local d
  for d in "$RUNS"/*/; do
    [[ -f $d/owner && $(<"$d/owner") == "$$" ]] && basename "$d"
  done
  return 0
}

cleanup() {
  local name
  for name in "${!BG_PIDS[@]}"; do
    say "ending the unfinished background step $name"
    kill -TERM -- "-${BG_PIDS[$name]}" 2>/dev/null || true
  done
  say "stopping the test schema registry"
  bash "$REGISTRY" down test || true
  say "stopping test brokers"
  bash "$KAFKA" down test || true
  for name in $(owned_brokers); do
    bash "$KAFKA" down "$name" || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

install_tools || { say "installing test dependencies failed"; exit 1; }
mkdir -p "$ROOT/.cache"
bg pip install_python # waited for before pytest

export KAFKA_OWNER_PID=$$
# kcat and the Python packages are installed above (the latter in the background, waited for
# before pytest): a test that needs one fails (instead of skipping) when it is missing.
if [[ ${FLIGHTSINK_SKIP_INSTALL:-0} != 1 ]]; then export FLIGHTSINK_TEST_REQUIRE_TOOLS=1; fi
export FLIGHTSINK_KAFKA_SCRIPT=$KAFKA
bash "$KAFKA" down test # a leftover from a killed run would carry old topics
out=$(bash "$KAFKA" up test) || { say "could not start the test Kafka broker"; exit 1; }
addr=$(tail -n 1 <<<"$out")
[[ $addr == KAFKA_BROKERS=* ]] || { say "unexpected output from kafka.sh up: $out"; exit 1; }
export FLIGHTSINK_TEST_BROKERS=${addr#KAFKA_BROKERS=}
say "Kafka broker at $FLIGHTSINK_TEST_BROKERS"

bash "$REGISTRY" down test # a leftover from a killed run
# a fresh CI clone never starts the registry again: no class-data archive to write as it stops
if [[ ${CI:-} == true ]]; then export REGISTRY_CDS=${REGISTRY_CDS:-0}; fi
bg registry bash "$REGISTRY" up test "$FLIGHTSINK_TEST_BROKERS" # while Go builds

status=0
step() { # step NAME CMD...: run it, remember the first failure
  local rc=0
  say "$1"
  shift
  "$@" || rc=$?
  if ((rc != 0)); then
    say "failed (exit $rc)"
    ((status == 0)) && status=$rc
  fi
  return 0
}

# one build of the binary for every test that runs it (tests/e2e, tests/faults, pytest)
if [[ -d cmd/flightsink ]]; then
  step "go build -o bin/flightsink ./cmd/flightsink" go build -o bin/flightsink ./cmd/flightsink
  export FLIGHTSINK_BIN=$ROOT/bin/flightsink
fi

# the Go client is a module of its own (clients/go/fsclient): vetted and tested on its own too
GO_MODULES=(. clients/go/fsclient)
go_vet() {
  local m rc=0
  for m in "${GO_MODULES[@]}"; do
    (cd "$m" && go vet ./...) || rc=$?
  done
  return "$rc"
}
step "go vet ./... (every module)" go_vet

wait_bg registry || {
  say "could not start the test schema registry (scripts/registry.sh up test $FLIGHTSINK_TEST_BROKERS; log: $CACHE/registry/run/test/logs/registry.log)"
  exit 1
}
addr=$(grep '^REGISTRY_URL=' "$ROOT/.cache/registry.out" | tail -n 1)
[[ $addr == REGISTRY_URL=* ]] || { say "unexpected output from registry.sh up (above)"; exit 1; }
export FLIGHTSINK_TEST_REGISTRY=${addr#REGISTRY_URL=}
say "schema registry at $FLIGHTSINK_TEST_REGISTRY"

# tests/faults starts a three-node cluster of its own (3 JVMs and toxiproxy) and times what the
# faults it causes do: it runs with the short nemesis schedule (make test-faults runs the long
# one) alone, after the other Go tests (beside them, a claim heartbeat starved past
# kafka.replica_claim_ttl and an ISR that did not recover within 3 minutes failed it).
fault_tests() {
  local log=$ROOT/.cache/go-test-faults.log rc=0
  # shellcheck disable=SC2086
  go test -race -count=1 -timeout 15m -v ${GO_TEST_FLAGS:-} ./tests/faults >"$log" 2>&1 || rc=$?
  if ((rc != 0)); then grep -v '^ *writer.go:[0-9]*: {' "$log"; fi
  grep -E 'nemesis schedule|fault [0-9]+ |read_committed:|/readyz|^(ok|FAIL|--- )' "$log" || true
  return "$rc"
}

# go test -v, kept whole in a log; printed: each package's result, which broker the tests ran
# against (every test logs it), skipped tests, and on failure the whole log without the
# server's own log lines. go test runs 2 packages at a time (GOMAXPROCS; -p 3 starved the tests
# with 1 s timeouts) in the order given: the slowest first, so that they run while the rest
# builds. -parallel 8: the tests that call t.Parallel (each on a broker or a JVM of its own,
# mostly waiting) run side by side. -vet=off: go vet ./... ran above, a superset of the checks
# go test would run again.
SLOW_PACKAGES=(tests/e2e flightsink) # in the root module
go_packages() { # the module's packages but tests/faults, SLOW_PACKAGES first
  local mod all slow first=()
  mod=$(go list -m)
  all=$(go list ./... | grep -v '/tests/faults$')
  for slow in "${SLOW_PACKAGES[@]}"; do
    if grep -qx "$mod/$slow" <<<"$all"; then
      first+=("$mod/$slow")
      all=$(grep -vx "$mod/$slow" <<<"$all")
    fi
  done
  printf '%s\n' "${first[@]}" "$all"
}
go_tests() {
  local m log=$ROOT/.cache/go-test.log rc=0
  : >"$log"
  for m in "${GO_MODULES[@]}"; do
    # shellcheck disable=SC2046,SC2086 # tests/faults runs on its own, above
    (cd "$m" && go test -race -count=1 -timeout 15m -parallel 8 -vet=off -v ${GO_TEST_FLAGS:-} $(go_packages)) >>"$log" 2>&1 || rc=$?
  done
  if ((rc != 0)); then
    grep -v '^ *writer.go:[0-9]*: {' "$log"
  fi
  echo "tests per broker kind:"
  grep -o 'kafka under test: [^(]*' "$log" | sort | uniq -c || true
  grep -E '^ *--- SKIP' "$log" || echo "no test skipped"
  grep -E '^(ok|FAIL|\?) ' "$log" || true
  return "$rc"
}
step "go test -race ./... (every module)" go_tests
step "go test -race ./tests/faults (three-node cluster, short nemesis schedule)" fault_tests

shopt -s nullglob globstar
py_tests=(tests/python/**/test_*.py tests/python/**/*_test.py)
if ! wait_bg pip; then
  say "installing Python test deps failed: pytest not run"
  ((status == 0)) && status=1
  py_tests=()
fi
if ((${#py_tests[@]} > 0)); then
  pytest_rc=0
  say "pytest tests/python"
  "$VENV/bin/python" -m pytest tests/python || pytest_rc=$?
  if ((pytest_rc == 5)); then
    say "pytest collected no tests"
  elif ((pytest_rc != 0)); then
    say "pytest failed (exit $pytest_rc)"
    ((status == 0)) && status=$pytest_rc
  fi
fi

if ((status != 0)); then
  say "warnings and errors of the test broker (tail):"
  grep -E ' (WARN|ERROR) ' "$RUNS/test/logs/server.log" 2>/dev/null | tail -n 30 >&2 || true
  say "errors of the test schema registry (tail):"
  grep -E ' ERROR ' "$CACHE/registry/run/test/logs/registry.log" 2>/dev/null | tail -n 20 | cut -c1-400 >&2 || true
fi
exit "$status"
