package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flightsink/flightsink/cmd/flightsink/put"
	"github.com/flightsink/flightsink/internal/kafkatest"
	"github.com/flightsink/flightsink/internal/puttest"
)

// putServer is a flightsink server process on the test broker.
type putServer struct {
	addr    string
	brokers []string
	prefix  string // kafka.transactional_id_prefix: a restart with the same one fences the killed server's producers
	proc    *process
}

// startPutServer starts `flightsink serve` on the test broker (real Kafka
// under make test), with a transactional-id prefix of its own, and waits
// until it serves.
func startPutServer(t *testing.T) putServer {
	t.Helper()
	return startPutServerWith(t, fmt.Sprintf("put%d", time.Now().UnixNano()%1_000_000_000), os.DevNull)
}

// startPutServerWith starts a server with a given transactional-id prefix
// and config file.
func startPutServerWith(t *testing.T, prefix, config string) putServer {
	t.Helper()
	brokers, _ := kafkatest.Brokers(t)
	addr := freeAddr(t)
	p := start(t, []string{"FLIGHTSINK_METRICS_LISTEN=", "FLIGHTSINK_KAFKA_TRANSACTIONAL_ID_PREFIX=" + prefix,
		"FLIGHTSINK_KAFKA_REPLICA_CLAIM_TTL=2s"}, // a killed server's name is free for its successor after this long
		"serve", "--config", config, "--brokers", strings.Join(brokers, ","), "--listen", addr)
	if !p.waitFor("flightsink serving") {
		t.Fatal("the server did not start")
	}
	return putServer{addr: addr, brokers: brokers, prefix: prefix, proc: p}
}

// topic creates a one-partition topic (records keep their order).
func (s putServer) topic(t *testing.T) string {
	t.Helper()
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, s.brokers, topic, 1, nil)
	return topic
}

// runPut runs `flightsink put --server ADDR args...` with stdin and returns
// its exit code, stdout and stderr.
func (s putServer) runPut(t *testing.T, stdin io.Reader, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"put", "--server", s.addr}, args...)...)
	cmd.Dir = t.TempDir()
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errb.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	}
	t.Fatalf("running put %v: %v", args, err)
	return 0, "", ""
}

// mustPut runs put and fails the test unless it exits 0.
func (s putServer) mustPut(t *testing.T, stdin io.Reader, args ...string) string {
	t.Helper()
	code, _, stderr := s.runPut(t, stdin, args...)
	if code != 0 {
		t.Fatalf("put %v: exit %d: %s", args, code, stderr)
	}
	return stderr
}

// checkRows checks that the topic holds rows 0..n-1, each once and in
// order, keyed by name, read with read_committed isolation.
func checkRows(t *testing.T, brokers []string, topic string, n int64) []*kgo.Record {
	t.Helper()
	recs := kafkatest.ReadCommitted(t, brokers, topic)
	if int64(len(recs)) != n {
		t.Fatalf("%s holds %d committed records, want %d", topic, len(recs), n)
	}
	for i, r := range recs {
		if want := puttest.Value(int64(i)); string(r.Value) != want || string(r.Key) != fmt.Sprintf("n%d", i) {
			t.Fatalf("record %d: key %q value %s; want key n%d value %s", i, r.Key, r.Value, i, want)
		}
	}
	return recs
}

// TestPutEndToEnd runs `flightsink put` against a flightsink server on the
// test broker: each input format, stdin, several files, bad input, resume
// after a SIGKILL of put, and its progress display.
func TestPutEndToEnd(t *testing.T) {
	s := startPutServer(t)
	dir := t.TempDir()
	for _, c := range []struct {
		name   string
		format puttest.Format
		file   string
		extra  []string
	}{
		{"parquet", puttest.Parquet, "orders.parquet", nil},
		{"arrow_file", puttest.ArrowFile, "orders.arrow", nil},
		{"arrow_stream", puttest.ArrowStream, "orders.arrows", nil},
		{"arrow_stream_named_arrow", puttest.ArrowStream, "stream.arrow", nil}, // sniffed: the IPC stream format
		{"csv_inferred", puttest.CSV, "orders.csv", nil},
		{"jsonl_with_schema", puttest.JSONL, "orders.jsonl", []string{"--schema", "id:int64,name:string,amount:float64"}},
		{"jsonl_inferred_unnamed", puttest.JSONL, "orders.data", []string{"--format", "jsonl"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			topic := s.topic(t)
			path := puttest.Write(t, dir, c.name+"-"+c.file, c.format, 0, 1000, 300)
			args := append([]string{"--topic", topic, "--key-field", "name", "--checkpoint-rows", "400"}, c.extra...)
			stderr := s.mustPut(t, nil, append(args, path)...)
			checkRows(t, s.brokers, topic, 1000)
			// 1000 rows: checkpoints after 400 and 800, the tail committed at the end
			if !strings.Contains(stderr, "put: 1000 rows to "+topic) || !strings.Contains(stderr, "checkpoints committed") {
				t.Errorf("summary %q", stderr)
			}
		})
	}

	t.Run("jsonl_inferred_nested_with_timestamp", func(t *testing.T) {
		topic := s.topic(t)
		in := `{"id":1,"at":"2026-01-02T03:04:05Z","tags":["a","b"],"loc":{"lat":1.5}}` + "\n" +
			`{"id":2,"at":"2026-01-02T03:04:06.25Z","tags":[],"loc":null}` + "\n"
		path := writeFile(t, "nested.jsonl", in)
		s.mustPut(t, nil, "--topic", topic, "--timestamp-field", "at", path)
		recs := kafkatest.ReadCommitted(t, s.brokers, topic)
		want := []string{`{"id":1,"at":"2026-01-02T03:04:05.000000Z","tags":["a","b"],"loc":{"lat":1.5}}`,
			`{"id":2,"at":"2026-01-02T03:04:06.250000Z","tags":[],"loc":null}`}
		if len(recs) != 2 || string(recs[0].Value) != want[0] || string(recs[1].Value) != want[1] ||
			recs[0].Timestamp.UnixMilli() != 1767323045000 || recs[1].Timestamp.UnixMilli() != 1767323046250 {
			t.Fatalf("records %v; want values %q with the timestamps of at", values(recs), want)
		}
	})

	t.Run("stdin", func(t *testing.T) {
		for _, format := range []puttest.Format{puttest.ArrowStream, puttest.CSV, puttest.JSONL} {
			topic := s.topic(t)
			data, err := os.ReadFile(puttest.Write(t, dir, "stdin."+string(format), format, 0, 700, 300))
			if err != nil {
				t.Fatal(err)
			}
			s.mustPut(t, bytes.NewReader(data), "--topic", topic, "--key-field", "name", "-") // format sniffed
			checkRows(t, s.brokers, topic, 700)
		}
	})

	t.Run("several_files_of_several_formats", func(t *testing.T) {
		topic := s.topic(t)
		a := puttest.Write(t, dir, "part1.parquet", puttest.Parquet, 0, 300, 100)
		b := puttest.Write(t, dir, "part2.csv", puttest.CSV, 300, 300, 0)
		c := puttest.Write(t, dir, "part3.arrows", puttest.ArrowStream, 600, 300, 128)
		csv, err := os.ReadFile(b)
		if err != nil {
			t.Fatal(err)
		}
		// stdin between two files; checkpoints every 250 rows, across the inputs
		stderr := s.mustPut(t, bytes.NewReader(csv), "--topic", topic, "--key-field", "name", "--checkpoint-rows", "250", a, "-", c)
		checkRows(t, s.brokers, topic, 900)
		if !strings.Contains(stderr, "put: 900 rows to "+topic) || !strings.Contains(stderr, "3 checkpoints committed") {
			t.Errorf("summary %q; want 900 rows and 3 checkpoints of 250 rows (and the tail)", stderr)
		}
	})
}

// TestPutDescriptorFlags: descriptor flags reach the records, and a named
// writer resumes across files: a second run with one more file sends only
// that file's rows.
func TestPutDescriptorFlags(t *testing.T) {
	s := startPutServer(t)
	dir := t.TempDir()
	topic := s.topic(t)
	path := puttest.Write(t, dir, "a.arrows", puttest.ArrowStream, 0, 10, 10)
	s.mustPut(t, nil, "--topic", topic, "--key-field", "name", "--exclude-fields", "amount", "--header", "src=put",
		"--header", "run=1", "--delivery", "at_least_once", path)
	recs := kafkatest.ReadCommitted(t, s.brokers, topic)
	if len(recs) != 10 {
		t.Fatalf("%d records, want 10", len(recs))
	}
	for i, r := range recs {
		headers := map[string]string{}
		for _, h := range r.Headers {
			headers[h.Key] = string(h.Value)
		}
		if want := fmt.Sprintf(`{"id":%d,"name":"n%d"}`, i, i); string(r.Value) != want || string(r.Key) != fmt.Sprintf("n%d", i) ||
			len(headers) != 2 || headers["src"] != "put" || headers["run"] != "1" {
			t.Fatalf("record %d: key %q value %s headers %v; want value %s and the headers src=put, run=1", i, r.Key, r.Value, headers, want)
		}
	}

	topic = s.topic(t)
	a := puttest.Write(t, dir, "a.parquet", puttest.Parquet, 0, 300, 100)
	b := puttest.Write(t, dir, "b.parquet", puttest.Parquet, 300, 300, 100)
	writer := fmt.Sprintf("put-files-%d", time.Now().UnixNano())
	s.mustPut(t, nil, "--topic", topic, "--key-field", "name", "--writer-id", writer, a)
	stderr := s.mustPut(t, nil, "--topic", topic, "--key-field", "name", "--writer-id", writer, a, b)
	if !strings.Contains(stderr, "put: 300 rows to "+topic) || !strings.Contains(stderr, "skipped the 300 rows") {
		t.Errorf("the second run said %q; want 300 rows sent, 300 skipped", stderr)
	}
	checkRows(t, s.brokers, topic, 600)
	code, _, stderr := s.runPut(t, nil, "--topic", topic, "--writer-id", writer, b)
	if code != 1 || !strings.Contains(stderr, fmt.Sprintf("writer %q has committed 600 rows, but %s hold only 300", writer, b)) {
		t.Errorf("fewer rows than committed: exit %d, %q; want 1 and the refusal", code, stderr)
	}
	checkRows(t, s.brokers, topic, 600)
}

func values(recs []*kgo.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}

// committedRows counts the topic's committed records without waiting for
// open transactions (read_committed up to the last stable offset), and
// says whether a transaction holds records after them.
func committedRows(t *testing.T, brokers []string, topic string) (rows int64, open bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.KeepControlRecords(), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil || ends.Error() != nil {
		t.Fatalf("end offsets of %s: %v %v", topic, err, ends.Error())
	}
	stable, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil || stable.Error() != nil {
		t.Fatalf("last stable offsets of %s: %v %v", topic, err, stable.Error())
	}
	hwm, _ := ends.Lookup(topic, 0)
	lso, _ := stable.Lookup(topic, 0)
	for off := int64(0); off < lso.Offset; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %v", topic, ctx.Err())
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("reading %s: %v", topic, err) })
		fs.EachRecord(func(r *kgo.Record) {
			off = r.Offset + 1
			if !r.Attrs.IsControl() && r.Offset < lso.Offset {
				rows++
			}
		})
	}
	return rows, hwm.Offset > lso.Offset
}

// TestPutHelp: --help prints the usage with every flag and exits 0.
func TestPutHelp(t *testing.T) {
	code, stdout, stderr := run(t, nil, "put", "--help")
	if code != 0 || !strings.Contains(stdout+stderr, "usage: flightsink put --topic TOPIC") {
		t.Fatalf("put --help: exit %d, %q", code, stdout+stderr)
	}
	for _, name := range put.DescriptorFlags() {
		if !strings.Contains(stdout+stderr, "-"+name+" ") && !strings.Contains(stdout+stderr, "-"+name+"\n") {
			t.Errorf("put --help does not list --%s", name)
		}
	}
	if code, _, stderr := run(t, nil, "put", "--topic", "t"); code != 1 || !strings.Contains(stderr, "name at least one FILE") {
		t.Errorf("put without files: exit %d, %q", code, stderr)
	}
}
