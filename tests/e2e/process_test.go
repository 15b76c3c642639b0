// Package e2e tests flightsink as users run it: the real binary as its own
// process (killed with SIGKILL, restarted, run twice), the Go client, and a
// real Kafka broker (stopped and restarted when a test needs it).
package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flightsink/flightsink/internal/kafkatest"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// binary is the flightsink binary: FLIGHTSINK_BIN (make test builds it), or
// one built for this test run (without -race: it is the product as shipped).
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if p := os.Getenv("FLIGHTSINK_BIN"); p != "" {
			binPath = p
			return
		}
		dir, err := os.MkdirTemp("", "flightsink-e2e")
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

// server is a flightsink process.
type server struct {
	t      *testing.T
	addr   string
	args   []string
	env    []string
	dataKB int // ulimit -d of the process, 0 for none
	cmd    *exec.Cmd
	logs   *bytes.Buffer
	mu     *sync.Mutex
	done   chan struct{}
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

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

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
		if t.Failed() && s.mu != nil {
			t.Logf("server %s log:\n%s", s.addr, s.log())
		}
	})
	return s
}

// start runs the process on s.addr (again, after a kill: same address).
func (s *server) start() {
	s.t.Helper()
	s.wait(s.launch())
}

// launch starts the process and returns a channel closed once it serves.
func (s *server) launch() chan struct{} {
	s.t.Helper()
	s.logs, s.mu, s.done = &bytes.Buffer{}, &sync.Mutex{}, make(chan struct{})
	s.cmd = exec.Command(binary(s.t), append(s.args, "--listen", s.addr)...)
	if s.dataKB > 0 { // bash sets the limit, then becomes the server (same pid)
		s.cmd = exec.Command("bash", append([]string{"-c", fmt.Sprintf(`ulimit -d %d && exec "$0" "$@"`, s.dataKB), binary(s.t)},
			append(s.args, "--listen", s.addr)...)...)
	}
	s.cmd.Env = s.env
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	serving := make(chan struct{})
	go func() {
		defer close(s.done)
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
		_ = s.cmd.Wait()
	}()
	return serving
}

// wait waits until the launched process serves, failing the test if it
// exits or does not serve within a minute.
func (s *server) wait(serving chan struct{}) {
	s.t.Helper()
	select {
	case <-serving:
	case <-s.done:
		s.t.Fatalf("flightsink exited before serving:\n%s", s.log())
	case <-time.After(time.Minute):
		s.t.Fatalf("flightsink not serving after a minute:\n%s", s.log())
	}
}

func (s *server) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

// kill ends the process with SIGKILL: no cleanup, no abort, like a crash.
func (s *server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
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
