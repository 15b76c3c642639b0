// Package proctest runs the flightsink binary as a process of its own, for
// the tests that treat it as users do (tests/e2e, tests/faults): the binary
// is FLIGHTSINK_BIN (make test builds it once) or one built per test binary,
// a process's stderr is kept and watched for the line that says it serves,
// and a process is ended with SIGKILL, like a crash. It is for tests only.
package proctest

import (
	"bufio"
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
)

// ServingLine is what flightsink serve logs (on stderr) once it accepts
// Flight calls.
const ServingLine = "flightsink serving"

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary returns the flightsink binary: FLIGHTSINK_BIN when it is set (make
// test builds bin/flightsink once for every package), else one built from
// this source tree with go build (without -race: the product as shipped),
// once per test binary, into a temporary directory.
func Binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		if p := os.Getenv("FLIGHTSINK_BIN"); p != "" {
			binPath = p
			return
		}
		dir, err := os.MkdirTemp("", "flightsink-proctest")
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

// FreeAddr returns a 127.0.0.1 address whose port was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Process is one run of a program whose stderr is kept line by line.
type Process struct {
	cmd     *exec.Cmd
	serving chan struct{} // closed once stderr has shown ServingLine
	done    chan struct{} // closed once the process has exited and stderr is read

	mu   sync.Mutex
	logs strings.Builder
}

// Launch starts argv[0] with the arguments argv[1:] and the environment env
// (the whole environment: pass os.Environ() and more), and returns at once;
// Serving tells when it serves. The caller ends it with Kill.
func Launch(t testing.TB, argv, env []string) *Process {
	t.Helper()
	p := &Process{cmd: exec.Command(argv[0], argv[1:]...), serving: make(chan struct{}), done: make(chan struct{})}
	p.cmd.Env = env
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		var once sync.Once
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.logs.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if strings.Contains(sc.Text(), ServingLine) {
				once.Do(func() { close(p.serving) })
			}
		}
		_ = p.cmd.Wait()
	}()
	return p
}

// Serving is closed once the process has logged ServingLine.
func (p *Process) Serving() <-chan struct{} { return p.serving }

// Done is closed once the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Cmd is the started command: its Process for the pid or a signal, its
// ProcessState once Done is closed.
func (p *Process) Cmd() *exec.Cmd { return p.cmd }

// WaitServing waits until the process serves, failing the test with the
// last tailLines lines of its log if it exits first or does not serve
// within timeout (tailLines 0: the whole log).
func (p *Process) WaitServing(t testing.TB, timeout time.Duration, tailLines int) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.serving:
	case <-p.done:
		t.Fatalf("flightsink exited before serving:\n%s", Tail(p.Log(), tailLines))
	case <-timer.C:
		t.Fatalf("flightsink not serving after %v:\n%s", timeout, Tail(p.Log(), tailLines))
	}
}

// Log returns what the process has written to stderr so far.
func (p *Process) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// Kill ends the process with SIGKILL (no cleanup, like a crash) and waits
// until it has exited. Killing an exited process does nothing.
func (p *Process) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Tail returns the last n lines of s (all of s when n is 0 or s is
// shorter).
func Tail(s string, n int) string {
	if n <= 0 {
		return s
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
