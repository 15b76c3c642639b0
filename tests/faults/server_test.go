package faults

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Settings of the flightsink processes under test: short enough that the
// faults show within seconds.
const (
	produceTimeout = 5 * time.Second
	txnTimeout     = 20 * time.Second
	claimTTL       = 6 * time.Second
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// binary is FLIGHTSINK_BIN (make test builds it) or one built for this run.
func binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		if p := os.Getenv("FLIGHTSINK_BIN"); p != "" {
			binPath = p
			return
		}
		dir, err := os.MkdirTemp("", "flightsink-faults")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "flightsink")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/flightsink/flightsink/cmd/flightsink").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// server is a flightsink process on a fixed address, killed (SIGKILL) and
// restarted by the tests; it is killed when the test ends.
type server struct {
	t       testing.TB
	addr    string
	metrics string // host:port of /readyz
	args    []string
	env     []string

	mu   sync.Mutex
	logs strings.Builder
	cmd  *exec.Cmd
	done chan struct{}
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
			t.Logf("flightsink %s log (tail):\n%s", s.addr, tail(s.log(), 60))
		}
	})
	s.start()
	return s
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start runs the process (again, after kill: same addresses) and waits
// until it serves.
func (s *server) start() {
	s.t.Helper()
	cmd := exec.Command(binary(s.t), append(s.args, "--listen", s.addr, "--metrics-listen", s.metrics)...)
	cmd.Env = s.env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	serving, done := make(chan struct{}), make(chan struct{})
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	go func() {
		defer close(done)
		var once sync.Once
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			s.mu.Lock()
			s.logs.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			if strings.Contains(sc.Text(), "flightsink serving") {
				once.Do(func() { close(serving) })
			}
		}
		_ = cmd.Wait()
	}()
	select {
	case <-serving:
	case <-done:
		s.t.Fatalf("flightsink exited before serving:\n%s", tail(s.log(), 40))
	case <-time.After(3 * time.Minute):
		s.t.Fatalf("flightsink not serving after 3 minutes:\n%s", tail(s.log(), 40))
	}
}

// kill ends the process with SIGKILL, like a crash.
func (s *server) kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

func (s *server) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
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

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
