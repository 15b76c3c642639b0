package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/creack/pty"

	"github.com/flightsink/flightsink/clients/go/fsclient"
	"github.com/flightsink/flightsink/cmd/flightsink/put"
	"github.com/flightsink/flightsink/internal/puttest"
)

// midUpload is a put reading a CSV file of 60000 rows through a named
// pipe, so it stays mid-upload for as long as a test likes.
type midUpload struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan error
	pipe   *os.File
	args   []string // put's arguments but the file
	whole  string   // the same rows in a regular file
	data   []byte
}

// startMidUpload starts put on the pipe, writes the header and rows
// 0..30499, and returns once 30 checkpoints of 1000 rows are committed and
// the 500 rows after them sit in an open transaction.
func startMidUpload(t *testing.T, s putServer, topic, writer string) *midUpload {
	t.Helper()
	dir := t.TempDir()
	m := &midUpload{stderr: &syncBuffer{}, exited: make(chan error, 1), whole: puttest.Write(t, dir, "orders.csv", puttest.CSV, 0, 60_000, 0)}
	var err error
	if m.data, err = os.ReadFile(m.whole); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "pipe.csv")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	m.args = []string{"--topic", topic, "--key-field", "name", "--writer-id", writer, "--checkpoint-rows", "1000", "--batch-rows", "100"}
	m.cmd = exec.Command(binPath, append([]string{"put", "--server", s.addr}, append(m.args, fifo)...)...)
	m.cmd.Stderr = m.stderr
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { m.exited <- m.cmd.Wait() }()
	t.Cleanup(func() { _ = m.cmd.Process.Kill() })
	if m.pipe, err = os.OpenFile(fifo, os.O_WRONLY, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.pipe.Close() })
	cut := bytes.Index(m.data, []byte("\n30500,")) + 1
	if _, err := m.pipe.Write(m.data[:cut]); err != nil {
		t.Fatal(err)
	}
	for {
		rows, open := committedRows(t, s.brokers, topic)
		if rows > 30_000 {
			t.Fatalf("%d rows committed from 30500 sent with checkpoints every 1000", rows)
		}
		if rows == 30_000 && open {
			return m
		}
		select {
		case err := <-m.exited:
			t.Fatalf("put exited (%v) mid-upload: %s", err, m.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// finishRun re-runs the same command on the whole file and checks that it
// sends the 30000 rows after the committed ones, and that the topic then
// holds every row exactly once.
func (m *midUpload) finishRun(t *testing.T, s putServer, topic string) {
	t.Helper()
	code, _, stderr := s.runPut(t, nil, append(m.args, m.whole)...)
	if code != 0 {
		t.Fatalf("the re-run: exit %d: %s", code, stderr)
	}
	t.Logf("the re-run said: %s", stderr)
	if !strings.Contains(stderr, "put: 30000 rows to "+topic) || !strings.Contains(stderr, "skipped the 30000 rows writer") {
		t.Errorf("the re-run's summary %q; want 30000 rows sent and 30000 skipped", stderr)
	}
	checkRows(t, s.brokers, topic, 60_000)
}

// TestPutResumeAfterSIGKILL: put is killed with SIGKILL mid-upload, with 30
// checkpoints committed and rows in an open transaction. The same command
// on the whole file (the same rows) resumes: every row is in Kafka exactly
// once, in order, byte for byte, read with read_committed isolation. A
// re-run from stdin is refused, since stdin cannot be replayed.
func TestPutResumeAfterSIGKILL(t *testing.T) {
	s := startPutServer(t)
	topic := s.topic(t)
	writer := fmt.Sprintf("put-resume-%d", time.Now().UnixNano())
	m := startMidUpload(t, s, topic, writer)
	if err := m.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-m.exited; err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("put after SIGKILL: %v; want it killed", err)
	}
	m.pipe.Close()
	m.finishRun(t, s, topic)

	// from stdin a resume is refused; a run after everything is committed sends nothing
	code, _, stderr := s.runPut(t, bytes.NewReader(m.data), append(m.args, "-")...)
	if code != 1 || !strings.Contains(stderr, fmt.Sprintf("writer %q has already committed 60000 rows, and stdin cannot be replayed", writer)) {
		t.Errorf("resuming from stdin: exit %d, %q; want 1 and the refusal", code, stderr)
	}
	if stderr := s.mustPut(t, nil, append(m.args, m.whole)...); !strings.Contains(stderr, "put: 0 rows to") {
		t.Errorf("a run after everything is committed: %q; want 0 rows sent", stderr)
	}
	checkRows(t, s.brokers, topic, 60_000)
}

// TestPutInterrupted: SIGINT mid-upload ends the stream without committing
// what follows the last checkpoint (no transaction stays open), exits 1
// saying so and that a re-run resumes, which it does.
func TestPutInterrupted(t *testing.T) {
	s := startPutServer(t)
	topic := s.topic(t)
	m := startMidUpload(t, s, topic, fmt.Sprintf("put-int-%d", time.Now().UnixNano()))
	if err := m.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(m.stderr.String(), "put: interrupted: aborting the stream") { // put has seen the signal
		select {
		case err := <-m.exited:
			t.Fatalf("put exited (%v) before it noticed the interrupt: %s", err, m.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	m.pipe.Close() // put is blocked reading: the end of its input wakes it
	err := <-m.exited
	stderr := m.stderr.String()
	t.Logf("interrupted: %s", stderr)
	if err == nil || !strings.Contains(stderr, "put: interrupted\n") ||
		!regexp.MustCompile(`has committed 30\d\d\d rows; a re-run of the same command resumes after them`).MatchString(stderr) {
		t.Fatalf("put after SIGINT: %v, %q; want exit 1, interrupted, and what a re-run does", err, stderr)
	}
	// the abort's markers reach the partition shortly after the abort returns
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		rows, open := committedRows(t, s.brokers, topic)
		if rows != 30_000 || (open && time.Now().After(deadline)) {
			t.Fatalf("after the interrupt %s holds %d committed rows (a transaction open: %v); want 30000 and none open", topic, rows, open)
		}
		if !open {
			break
		}
	}
	m.finishRun(t, s, topic)
}

// TestPutServerLostIsRetryable: the server dies (SIGKILL) mid-upload; put
// exits 1 saying the failure is retryable and a re-run resumes, and a re-run
// against the restarted server does, exactly once.
func TestPutServerLostIsRetryable(t *testing.T) {
	s := startPutServer(t)
	topic := s.topic(t)
	m := startMidUpload(t, s, topic, fmt.Sprintf("put-lost-%d", time.Now().UnixNano()))
	_ = s.proc.cmd.Process.Kill()
	_ = s.proc.cmd.Wait()
	m.pipe.Close()
	err := <-m.exited
	stderr := m.stderr.String()
	t.Logf("the server lost: %s", stderr)
	if err == nil || !strings.Contains(stderr, "Unavailable") ||
		!regexp.MustCompile(`has committed \d+ rows; the failure is retryable: a re-run of the same command resumes after them`).MatchString(stderr) {
		t.Fatalf("put after losing its server: %v, %q; want exit 1, Unavailable, retryable", err, stderr)
	}
	restarted := startPutServerWith(t, s.prefix, os.DevNull)
	m.finishRun(t, restarted, topic)
}

// TestPutRefusesBadInput: what cannot be read is refused before or while
// uploading, naming the file, column or row; nothing after the last
// acknowledged checkpoint is committed, and put says what is.
func TestPutRefusesBadInput(t *testing.T) {
	s := startPutServer(t)
	dir := t.TempDir()
	parquetData, err := os.ReadFile(puttest.Write(t, dir, "p.parquet", puttest.Parquet, 0, 10, 10))
	if err != nil {
		t.Fatal(err)
	}
	a := puttest.Write(t, dir, "a.csv", puttest.CSV, 0, 10, 0)
	narrow := writeFile(t, "b.csv", "id,name\n1,x\n")
	ints := writeIntAmounts(t, filepath.Join(dir, "ints.arrows"))
	for _, c := range []struct {
		name  string
		stdin []byte
		args  []string
		want  string
	}{
		{"parquet on stdin", parquetData, []string{"-"}, "stdin: Parquet needs seeking (its metadata is at the end of the file), which stdin cannot do"},
		{"parquet on stdin, named", parquetData, []string{"--format", "parquet", "-"}, "Parquet needs seeking"},
		{"other columns", nil, []string{a, narrow}, "b.csv: the CSV header names the columns id, name; the schema has id, name, amount"},
		{"other types", nil, []string{a, ints}, `ints.arrows: schema differs from ` + a + `'s: column 3 is "amount" int64, in ` + a + ` "amount" float64`},
		{"missing file", nil, []string{filepath.Join(dir, "nope.csv")}, "nope.csv: no such file or directory"},
		{"empty stdin", []byte{}, []string{"-"}, "stdin: empty, or its format is not recognised; pass --format"},
	} {
		code, _, stderr := s.runPut(t, bytes.NewReader(c.stdin), append([]string{"--topic", "unused"}, c.args...)...)
		if code != 1 || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d, %q; want 1 and %q", c.name, code, stderr, c.want)
		}
	}

	// a value that is not an int64 in row 2501, with checkpoints every 1000 rows
	topic := s.topic(t)
	var b strings.Builder
	b.WriteString("id,name,amount\n")
	for i := range 3000 {
		if i == 2500 {
			b.WriteString("x2500,n2500,2500.5\n")
			continue
		}
		fmt.Fprintf(&b, "%d,n%d,%d.5\n", i, i, i)
	}
	bad := writeFile(t, "bad.csv", b.String())
	code, _, stderr := s.runPut(t, nil, "--topic", topic, "--key-field", "name", "--checkpoint-rows", "1000", "--batch-rows", "100", bad)
	m := regexp.MustCompile(`(\d+) rows are committed in Kafka; without --writer-id a re-run writes them again`).FindStringSubmatch(stderr)
	if code != 1 || !strings.Contains(stderr, "bad.csv: a row among rows 2501-2600") || !strings.Contains(stderr, `"x2500"`) || m == nil {
		t.Fatalf("a bad value: exit %d, %q; want 1, the file, the row and the value, and what is committed", code, stderr)
	}
	t.Logf("a bad value: %s", stderr)
	committed, _ := strconv.ParseInt(m[1], 10, 64)
	if committed%1000 != 0 || committed > 2000 {
		t.Errorf("put says %d rows are committed; want whole checkpoints before row 2500", committed)
	}
	checkRows(t, s.brokers, topic, committed)

	// a named writer: a re-run resumes once the input is fixed
	topic = s.topic(t)
	writer := fmt.Sprintf("put-bad-%d", time.Now().UnixNano())
	code, _, stderr = s.runPut(t, nil, "--topic", topic, "--key-field", "name", "--checkpoint-rows", "1000", "--batch-rows", "100",
		"--writer-id", writer, bad)
	m = regexp.MustCompile(`writer "` + writer + `" has committed (\d+) rows; once the input is fixed, a re-run of the same command resumes after them`).FindStringSubmatch(stderr)
	if code != 1 || m == nil {
		t.Fatalf("a bad value, a named writer: exit %d, %q; want 1 and what a re-run does", code, stderr)
	}
	committed, _ = strconv.ParseInt(m[1], 10, 64)
	checkRows(t, s.brokers, topic, committed)
	fixed := writeFile(t, "fixed.csv", strings.Replace(b.String(), "x2500,", "2500,", 1))
	s.mustPut(t, nil, "--topic", topic, "--key-field", "name", "--checkpoint-rows", "1000", "--writer-id", writer, fixed)
	checkRows(t, s.brokers, topic, 3000)
}

// TestPutFailsWithTheServersReason: a stream the server refuses exits 1
// with the gRPC code and the server's reason.
func TestPutFailsWithTheServersReason(t *testing.T) {
	s := startPutServer(t)
	path := puttest.Write(t, t.TempDir(), "a.arrows", puttest.ArrowStream, 0, 10, 10)
	code, _, stderr := s.runPut(t, nil, "--topic", "no-such-topic-"+strconv.FormatInt(time.Now().UnixNano(), 36), path)
	t.Logf("a missing topic: %s", stderr)
	if code != 1 || !strings.Contains(stderr, "NotFound (topic_missing)") {
		t.Errorf("a missing topic: exit %d, %q; want 1 and NotFound (topic_missing)", code, stderr)
	}
	topic := s.topic(t)
	code, _, stderr = s.runPut(t, nil, "--topic", topic, "--key-field", "nope", path)
	if code != 1 || !strings.Contains(stderr, "nope") || !strings.Contains(stderr, "InvalidArgument") {
		t.Errorf("a key column that does not exist: exit %d, %q; want 1 naming the column", code, stderr)
	}
}

// TestPutHasAFlagForEveryDescriptorKey: the server's own list of the keys
// it parses (in its refusal of an unknown key) is put's table of flags.
func TestPutHasAFlagForEveryDescriptorKey(t *testing.T) {
	s := startPutServer(t)
	c, err := fsclient.Dial(s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = c.Open(ctx, fsclient.Descriptor{Topic: "t", Options: map[string]any{"no_such_key": 1}}, puttest.Schema)
	m := regexp.MustCompile(`known keys: ([^)]*)\)`).FindStringSubmatch(fmt.Sprint(err))
	if m == nil {
		t.Fatalf("an unknown key: %v; want the refusal listing the known keys", err)
	}
	server := strings.Split(m[1], ", ")
	var table []string
	for key := range put.DescriptorFlags() {
		table = append(table, key)
	}
	sort.Strings(server)
	sort.Strings(table)
	if !slices.Equal(server, table) {
		t.Errorf("the server parses\n%v\nput has flags for\n%v", server, table)
	}
}

// TestPutProgress: on a terminal (a pseudo-terminal here) put draws a
// progress bar with rows, MB/s and checkpoints committed; piped, it prints
// only its one-line summary, and with --quiet nothing.
func TestPutProgress(t *testing.T) {
	s := startPutServer(t)
	path := puttest.Write(t, t.TempDir(), "a.parquet", puttest.Parquet, 0, 5000, 1000)
	topic := s.topic(t)
	args := []string{"put", "--server", s.addr, "--topic", topic, "--checkpoint-rows", "1000", path}

	cmd := exec.Command(binPath, args...)
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	out, _ := io.ReadAll(ptmx) // EIO once put has exited
	if err := cmd.Wait(); err != nil {
		t.Fatalf("put on a terminal: %v: %s", err, out)
	}
	screen := string(out)
	t.Logf("on a terminal: %q", screen)
	for _, want := range []string{"5000 rows, 5 checkpoints committed", "B/s)", "put: 5000 rows to " + topic} {
		if !strings.Contains(screen, want) {
			t.Errorf("on a terminal, put wrote %q; want %q in it", screen, want)
		}
	}

	for _, quiet := range []bool{false, true} {
		a := args[1:]
		if quiet {
			a = append(a, "--quiet")
		}
		code, stdout, stderr := s.runPut(t, nil, a[2:]...) // runPut adds put --server ADDR
		lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
		switch {
		case code != 0:
			t.Fatalf("put piped: exit %d: %s", code, stderr)
		case stdout != "":
			t.Errorf("put wrote %q to stdout", stdout)
		case quiet && stderr != "":
			t.Errorf("put --quiet wrote %q", stderr)
		case !quiet && (len(lines) != 1 || !strings.HasPrefix(lines[0], "put: 5000 rows to "+topic) || strings.ContainsAny(stderr, "\r\x1b")):
			t.Errorf("put piped wrote %q; want its summary line alone", stderr)
		}
	}
	checkRowsN(t, s, topic, 15000)
}

// checkRowsN: the topic holds the test rows 0..4999 n/5000 times over.
func checkRowsN(t *testing.T, s putServer, topic string, n int) {
	t.Helper()
	if got, _ := committedRows(t, s.brokers, topic); got != int64(n) {
		t.Errorf("%s holds %d rows, want %d", topic, got, n)
	}
}

// writeIntAmounts writes an Arrow IPC stream whose amount column is int64.
func writeIntAmounts(t *testing.T, path string) string {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "name", Type: arrow.BinaryTypes.String}, {Name: "amount", Type: arrow.PrimitiveTypes.Int64}}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	b.Field(0).(*array.Int64Builder).Append(1)
	b.Field(1).(*array.StringBuilder).Append("x")
	b.Field(2).(*array.Int64Builder).Append(1)
	rec := b.NewRecordBatch()
	defer rec.Release()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := ipc.NewWriter(f, ipc.WithSchema(schema), ipc.WithAllocator(mem))
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPutToken: --token (or $FLIGHTSINK_TOKEN) authenticates put to a
// server with auth.tokens; without it put exits 1 with Unauthenticated.
func TestPutToken(t *testing.T) {
	const token = "put-test-token-0123456789"
	config := writeFile(t, "auth.yaml", "auth:\n  tokens:\n    - {principal: loader, token: {value: "+token+"}}\n"+
		"  principals:\n    - {name: loader, topics: ['*']}\n")
	s := startPutServerWith(t, fmt.Sprintf("putauth%d", time.Now().UnixNano()%1_000_000_000), config)
	topic := s.topic(t)
	path := puttest.Write(t, t.TempDir(), "a.csv", puttest.CSV, 0, 10, 0)
	code, _, stderr := s.runPut(t, nil, "--topic", topic, path)
	if code != 1 || !strings.Contains(stderr, "Unauthenticated") {
		t.Errorf("without a token: exit %d, %q; want 1 and Unauthenticated", code, stderr)
	}
	s.mustPut(t, nil, "--topic", topic, "--key-field", "name", "--token", token, path)
	checkRows(t, s.brokers, topic, 10)
}

// syncBuffer is a bytes.Buffer a process writes while a test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
