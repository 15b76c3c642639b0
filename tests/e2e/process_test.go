// Package e2e tests flightsink as users run it: the real binary as its own
// process (killed with SIGKILL, restarted, run twice), the Go client, and a
// real Kafka broker (stopped and restarted when a test needs it).
//
// A test on a private broker of its own (scripts/kafka.sh up NAME: stopped,
// restarted, or with SASL/TLS listeners) shares nothing with the others and
// mostly waits on timeouts and token lifetimes, so it calls t.Parallel: those
// run side by side once the tests on the shared broker are done (make test
// passes -parallel 8; the default is GOMAXPROCS). Tests on the shared broker
// run one at a time (some reuse a kafka.replica name there, and some
// measure the server's memory under load).
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/flightsink/flightsink/internal/kafkatest"
	"github.com/flightsink/flightsink/internal/proctest"
)

// binary is the flightsink binary: FLIGHTSINK_BIN (make test builds it), or
// one built for this test run (without -race: it is the product as shipped).
func binary(t *testing.T) string { return proctest.Binary(t) }

// server is a flightsink process.
type server struct {
	t      *testing.T
	addr   string
	args   []string
	env    []string
	dataKB int // ulimit -d of the process, 0 for none
	proc   *proctest.Process
	cmd    *exec.Cmd       // proc's command
	done   <-chan struct{} // closed once proc has exited
}

// serverConfig is what differs between the processes of a test.
type serverConfig struct {
	brokers []string
	replica string
	prefix  string   // kafka.transactional_id_prefix, unique per test so tests do not share pool ids
	extra   []string // more arguments of serve
	env     []string // more environment
	dataKB  int      // a hard limit on the process's data memory (ulimit -d, KiB); 0 for none
}

func freeAddr(t *testing.T) string { return proctest.FreeAddr(t) }

// startServer starts a flightsink process and waits until it serves.
func startServer(t *testing.T, c serverConfig) *server {
	t.Helper()
	s := newServer(t, c)
	s.start()
	return s
}

// newServer prepares a flightsink process (started with start, or launch
// and wait) that is killed when the test ends.
func newServer(t *testing.T, c serverConfig) *server {
	t.Helper()
	s := &server{t: t, addr: freeAddr(t), dataKB: c.dataKB,
		env: append(os.Environ(),
			"FLIGHTSINK_KAFKA_REPLICA="+c.replica,
			"FLIGHTSINK_KAFKA_TRANSACTIONAL_ID_PREFIX="+c.prefix,
			"FLIGHTSINK_FLIGHT_SHUTDOWN_GRACE=2s",
			"FLIGHTSINK_METRICS_LISTEN=", // off unless a test asks: servers run side by side
			// A killed server's replica name is free for its restart after this long.
			"FLIGHTSINK_KAFKA_REPLICA_CLAIM_TTL=2s",
		)}
	s.env = append(s.env, c.env...)
	s.args = append([]string{"serve", "--config", os.DevNull, "--brokers", strings.Join(c.brokers, ",")}, c.extra...)
	t.Cleanup(func() {
		s.kill()
		if t.Failed() && s.proc != nil {
			t.Logf("server %s log:\n%s", s.addr, s.log())
		}
	})
	return s
}

// start runs the process on s.addr (again, after a kill: same address).
func (s *server) start() {
	s.t.Helper()
	s.launch()
	s.wait()
}

// launch starts the process and returns a channel closed once it serves.
func (s *server) launch() <-chan struct{} {
	s.t.Helper()
	argv := append([]string{binary(s.t)}, append(s.args, "--listen", s.addr)...)
	if s.dataKB > 0 { // bash sets the limit, then becomes the server (same pid)
		argv = append([]string{"bash", "-c", fmt.Sprintf(`ulimit -d %d && exec "$0" "$@"`, s.dataKB)}, argv...)
	}
	s.proc = proctest.Launch(s.t, argv, s.env)
	s.cmd, s.done = s.proc.Cmd(), s.proc.Done()
	return s.proc.Serving()
}

// wait waits until the launched process serves, failing the test if it
// exits or does not serve within a minute.
func (s *server) wait() {
	s.t.Helper()
	s.proc.WaitServing(s.t, time.Minute, 0)
}

func (s *server) log() string { return s.proc.Log() }

// kill ends the process with SIGKILL: no cleanup, no abort, like a crash.
func (s *server) kill() {
	if s.cmd == nil {
		return
	}
	s.proc.Kill()
	s.cmd = nil
}

// testBrokers is the shared test broker; these tests need real Kafka.
func testBrokers(t *testing.T) []string {
	t.Helper()
	brokers, kind := kafkatest.Brokers(t)
	if !kafkatest.IsReal(kind) {
		t.Skip("process tests need a real Kafka broker (make test starts one)")
	}
	return brokers
}

// uniquePrefix keeps each test's transactional ids its own.
func uniquePrefix(t *testing.T) string {
	return fmt.Sprintf("e2e%d", time.Now().UnixNano()%1_000_000_000)
}
