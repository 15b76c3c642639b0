package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestWritersAndTransactionsCommands: the binary's writers and
// transactions commands against a served flightsink (on the test broker of
// make test, else --dev): a table by default, the server's JSON with
// --json, exit 1 with the server's message and reason when it refuses.
func TestWritersAndTransactionsCommands(t *testing.T) {
	addr := freeAddr(t)
	args := []string{"serve", "--listen", addr, "--metrics-listen", ""}
	env := []string{"FLIGHTSINK_KAFKA_TRANSACTIONAL_ID_PREFIX=fscli-" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	if brokers := os.Getenv("FLIGHTSINK_TEST_BROKERS"); brokers != "" {
		args = append(args, "--brokers", brokers)
		env = append(env, "FLIGHTSINK_KAFKA_REPLICA=cli-"+strconv.Itoa(os.Getpid()), "FLIGHTSINK_KAFKA_CREATE_TOPICS=true")
	} else {
		args = append(args, "--dev", "--dev-kafka-addr", freeAddr(t))
	}
	p := start(t, env, args...)
	if !p.waitFor("flightsink serving") {
		t.Fatal("the server did not start")
	}
	writer := "cli-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	putNamed(t, addr, "TestWritersCommand-"+writer, writer)

	conn := []string{"--server", addr}
	cli := func(want int, a ...string) string {
		t.Helper()
		code, stdout, stderr := run(t, nil, a...)
		if code != want {
			t.Fatalf("%v: exit %d (stdout %q, stderr %q); want %d", a, code, stdout, stderr, want)
		}
		return stdout + stderr
	}
	out := cli(0, append([]string{"writers"}, append(conn, "list")...)...)
	if !strings.Contains(out, "PRINCIPAL") || !strings.Contains(out, writer) {
		t.Fatalf("writers list:\n%s", out)
	}
	out = cli(0, append([]string{"writers", "--json"}, append(conn, "show", writer)...)...)
	var shown map[string]any
	if err := json.Unmarshal([]byte(out), &shown); err != nil || shown["found"] != true || shown["last_checkpoint"] != 1.0 || shown["committed_rows"] != 3.0 {
		t.Fatalf("writers --json show: %q (%v)", out, err)
	}
	out = cli(0, append([]string{"writers"}, append(conn, "reset", writer)...)...)
	if !strings.Contains(out, "fenced and its progress forgotten (was checkpoint 1, 3 rows") {
		t.Fatalf("writers reset: %q", out)
	}
	out = cli(0, append([]string{"writers"}, append(conn, "show", writer)...)...)
	if !strings.Contains(out, "has committed nothing") {
		t.Fatalf("writers show after the reset: %q", out)
	}
	out = cli(1, append([]string{"writers"}, append(conn, "show")...)...)
	if !strings.Contains(out, "Usage: flightsink writers") {
		t.Fatalf("writers show without an id: %q", out)
	}
	out = cli(0, append([]string{"transactions"}, conn...)...)
	if !strings.Contains(out, "TRANSACTIONAL ID") || !strings.Contains(out, "lingering: open longer than 1m0s") {
		t.Fatalf("transactions: %q", out)
	}
	out = cli(1, append([]string{"transactions"}, append(conn, "abort", "someone-else")...)...)
	if !strings.Contains(out, "FailedPrecondition") || !strings.Contains(out, "not a transactional id of this server") || !strings.Contains(out, "(reason txn_not_abortable)") {
		t.Fatalf("transactions abort of another id: %q", out)
	}
}

// putNamed writes 3 rows as checkpoint 1 of a named writer.
func putNamed(t *testing.T, addr, topic, writer string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := flight.NewFlightServiceClient(conn).DoPut(ctx)
	if err != nil {
		t.Fatal(err)
	}
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	b.Field(0).(*array.Int64Builder).AppendValues([]int64{1, 2, 3}, nil)
	rec := b.NewRecordBatch()
	defer rec.Release()
	w := flight.NewRecordWriter(stream, ipc.WithSchema(schema))
	desc, _ := json.Marshal(map[string]any{"topic": topic, "writer_id": writer})
	w.SetFlightDescriptor(&flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: desc})
	if err := w.WriteWithAppMetadata(rec, []byte(`{"checkpoint":1}`)); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	_ = stream.CloseSend()
	for {
		if _, err := stream.Recv(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("the stream failed: %v", err)
			}
			return
		}
	}
}
