package proctest

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestLaunchWaitKill: a process that logs ServingLine serves, its stderr is
// kept, and Kill ends it (SIGKILL: its exit status says so).
func TestLaunchWaitKill(t *testing.T) {
	p := Launch(t, []string{"sh", "-c", `echo starting >&2; echo "` + ServingLine + ` on x" >&2; exec sleep 600`}, os.Environ())
	p.WaitServing(t, time.Minute, 0)
	if got, want := p.Log(), "starting\n"+ServingLine+" on x\n"; got != want {
		t.Fatalf("log %q, want %q", got, want)
	}
	p.Kill()
	if ws := p.Cmd().ProcessState.String(); ws != "signal: killed" {
		t.Fatalf("after Kill: %s, want signal: killed", ws)
	}
	p.Kill() // again: nothing happens
}

// TestExitBeforeServing: Done closes, Serving does not, when the process
// ends without serving.
func TestExitBeforeServing(t *testing.T) {
	p := Launch(t, []string{"sh", "-c", "echo bad config >&2; exit 1"}, os.Environ())
	select {
	case <-p.Serving():
		t.Fatal("a process that never logged the serving line serves")
	case <-p.Done():
	}
	if code := p.Cmd().ProcessState.ExitCode(); code != 1 || !strings.Contains(p.Log(), "bad config") {
		t.Fatalf("exit %d, log %q; want 1 and the log", code, p.Log())
	}
}

// TestTail: the last n lines, or everything for n <= 0.
func TestTail(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb\nc\n", 5, "a\nb\nc"},
		{"a\nb\nc\n", 0, "a\nb\nc\n"},
	} {
		if got := Tail(c.in, c.n); got != c.want {
			t.Errorf("Tail(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}
