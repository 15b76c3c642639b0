package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
