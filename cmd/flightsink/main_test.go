package main

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flightsink/flightsink/internal/proctest"
)

// binPath is the flightsink binary TestMain builds, so tests run the
// program a user runs.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "flightsink-cmd-test")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "flightsink")
	if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		panic("building flightsink: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// run runs the binary in an empty directory with env on top of this
// process's environment minus its FLIGHTSINK_* variables, and returns its
// exit code, stdout and stderr.
func run(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Dir = t.TempDir()
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FLIGHTSINK_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("running flightsink %v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

// fakeBroker is a TCP listener standing in for Kafka: a test checks that
// nothing connected to it.
type fakeBroker struct{ l *net.TCPListener }

func newFakeBroker(t *testing.T) *fakeBroker {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return &fakeBroker{l.(*net.TCPListener)}
}

func (b *fakeBroker) addr() string { return b.l.Addr().String() }

// requireUntouched fails the test if a connection reached the broker. The
// program has exited, so a connection it made is in the accept queue.
func (b *fakeBroker) requireUntouched(t *testing.T) {
	t.Helper()
	if err := b.l.SetDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if c, err := b.l.Accept(); err == nil {
		c.Close()
		t.Fatal("flightsink connected to the broker")
	}
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// process is a flightsink process whose stderr a test watches.
type process struct {
	cmd   *exec.Cmd
	lines chan string // stderr, line by line; closed at exit
	log   *strings.Builder
	mu    *sync.Mutex
}

// start runs the binary with env (on top of the environment without its
// FLIGHTSINK_* variables); it is killed when the test ends.
func start(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Dir = t.TempDir()
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FLIGHTSINK_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, lines: make(chan string, 1000), log: &strings.Builder{}, mu: &sync.Mutex{}}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			p.mu.Lock()
			t.Logf("flightsink log:\n%s", p.log.String())
			p.mu.Unlock()
		}
	})
	return p
}

// waitFor reads stderr until a line contains s; false if the process
// exited first.
func (p *process) waitFor(s string) bool {
	for line := range p.lines {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

// freeAddr is a loopback address nothing listens on (just now).
func freeAddr(t *testing.T) string { return proctest.FreeAddr(t) }
