package faults

import (
	"bufio"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flightsink/flightsink/internal/proctest"
)

// Settings of the flightsink processes under test: short enough that the
// faults show within seconds.
const (
	produceTimeout = 5 * time.Second
	txnTimeout     = 20 * time.Second
	claimTTL       = 6 * time.Second
)

// server is a flightsink process on a fixed address, killed (SIGKILL) and
// restarted by the tests; it is killed when the test ends.
type server struct {
	t       testing.TB
	addr    string
	metrics string // host:port of /readyz
	args    []string
	env     []string

	mu   sync.Mutex
	past strings.Builder   // the logs of the killed processes
	proc *proctest.Process // nil once killed
}

// startServer starts flightsink on the cluster with a transactional id
// prefix of its own and waits until it serves.
func startServer(t testing.TB, brokers []string, prefix string) *server {
	t.Helper()
	s := &server{t: t, addr: freeAddr(t), metrics: freeAddr(t),
		args: []string{"serve", "--config", os.DevNull, "--brokers", strings.Join(brokers, ",")},
		env: append(os.Environ(),
			"FLIGHTSINK_KAFKA_REPLICA=faults",
			"FLIGHTSINK_KAFKA_TRANSACTIONAL_ID_PREFIX="+prefix,
			"FLIGHTSINK_KAFKA_PRODUCE_TIMEOUT="+produceTimeout.String(),
			"FLIGHTSINK_KAFKA_TRANSACTION_TIMEOUT="+txnTimeout.String(),
			"FLIGHTSINK_KAFKA_REPLICA_CLAIM_TTL="+claimTTL.String(),
			"FLIGHTSINK_FLIGHT_MAX_STREAMS=8",
			"FLIGHTSINK_FLIGHT_SHUTDOWN_GRACE=2s",
			"FLIGHTSINK_METRICS_CHECK_INTERVAL=1s",
		)}
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			t.Logf("flightsink %s log (tail):\n%s", s.addr, proctest.Tail(s.log(), 60))
		}
	})
	s.start()
	return s
}

func freeAddr(t testing.TB) string { return proctest.FreeAddr(t) }

// start runs the process (again, after kill: same addresses) and waits
// until it serves.
func (s *server) start() {
	s.t.Helper()
	argv := append([]string{proctest.Binary(s.t)}, append(s.args, "--listen", s.addr, "--metrics-listen", s.metrics)...)
	p := proctest.Launch(s.t, argv, s.env)
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	p.WaitServing(s.t, 3*time.Minute, 40)
}

// kill ends the process with SIGKILL, like a crash.
func (s *server) kill() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return
	}
	p.Kill()
	s.mu.Lock()
	s.past.WriteString(p.Log())
	s.mu.Unlock()
}

// log is what every process of s has logged, the running one's last.
func (s *server) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return s.past.String()
	}
	return s.past.String() + s.proc.Log()
}

// ready asks /readyz: true on 200, and the body either way.
func (s *server) ready() (bool, string) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + s.metrics + "/readyz")
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		b.WriteString(sc.Text() + " ")
	}
	return resp.StatusCode == http.StatusOK, strings.TrimSpace(b.String())
}
