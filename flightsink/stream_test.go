package flightsink_test

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flightsink/flightsink/flightsink"
	"github.com/flightsink/flightsink/internal/kafkatest"
	"github.com/flightsink/flightsink/kafka"
)

// TestClientNeverReadsAcks: acks must never stall ingestion. The client
// sends 1,000 checkpoints without reading a single ack, then reads: the
// stream completes, acks arrive in order (possibly coalesced), and done is
// always delivered.
func TestClientNeverReadsAcks(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 2, nil)
	rec := simpleBatch(0, 5, -1, 0)
	defer rec.Release()
	var steps []step
	for i := 1; i <= 1000; i++ {
		steps = append(steps, batchMeta(rec, checkpoint(i)))
	}
	res := env.put(t, pathDesc(topic), simpleSchema, steps...)
	wantOK(t, res)
	last := res.acks[len(res.acks)-1]
	if last["type"] != "done" || last["total_rows"] != 5000.0 || last["last_checkpoint"] != 1000.0 {
		t.Fatalf("last ack %v, want done with 5000 rows and checkpoint 1000", last)
	}
	prev, rows := 0.0, 0.0
	for _, a := range res.acks[1 : len(res.acks)-1] {
		n := a["checkpoint"].(float64)
		if a["type"] != "checkpoint" || n <= prev {
			t.Fatalf("ack %v out of order after checkpoint %v", a, prev)
		}
		rows += a["rows"].(float64)
		if a["total_rows"] != rows {
			t.Fatalf("ack %v: total_rows is not the sum of rows so far (%v)", a, rows)
		}
		prev = n
	}
	if prev != 1000 {
		t.Fatalf("last checkpoint ack is %v, want 1000", prev)
	}
	t.Logf("%d checkpoint acks for 1000 checkpoints (older unsent acks were coalesced)", len(res.acks)-2)
	if got := kafkatest.ReadCommitted(t, env.brokers, topic); len(got) != 5000 {
		t.Fatalf("topic has %d records, want 5000", len(got))
	}
}

// TestClientCancelMidStream: the client cancels after a checkpoint; the
// server ends the stream, frees it, leaks no goroutine and no Arrow memory,
// and keeps serving.
func TestClientCancelMidStream(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	rec := simpleBatch(0, 10, -1, 0)
	defer rec.Release()
	// Warm up: the connection's and the shared producer's goroutines exist
	// before the baseline is taken.
	wantOK(t, env.put(t, pathDesc(topic), simpleSchema, batch(rec)))
	baseline := goleak.IgnoreCurrent()

	ctx, cancel := context.WithCancel(context.Background())
	stream, err := env.client.DoPut(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := flight.NewRecordWriter(stream, ipc.WithSchema(simpleSchema))
	w.SetFlightDescriptor(pathDesc(topic))
	if err := w.WriteWithAppMetadata(rec, []byte(checkpoint(1))); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // ready, then checkpoint 1
		if _, err := stream.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := stream.Recv(); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("Recv after cancel: %v, want a cancellation error", err)
	}

	deadline := time.Now().Add(20 * time.Second)
	for env.srv.ActiveStreams() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := env.srv.ActiveStreams(); n != 0 {
		t.Fatalf("%d streams still open after the client canceled", n)
	}
	if !strings.Contains(env.logs(), `"code":"Canceled"`) {
		t.Errorf("the server did not log the canceled stream; logs:\n%s", env.logs())
	}
	// The in-process kfake fallback runs its broker's connection readers in
	// this process too; they are the broker's, not the server's.
	goleak.VerifyNone(t, baseline, goleak.IgnoreAnyFunction("github.com/twmb/franz-go/pkg/kfake.(*clientConn).read.func1"))
	env.mem.AssertSize(t, 0)
	wantOK(t, env.put(t, pathDesc(topic), simpleSchema, batch(rec)))
}

// TestReadWithKcat reads what a stream wrote with kcat, an independent
// consumer (librdkafka), read_committed.
func TestReadWithKcat(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if requireTools() {
			t.Fatal("kcat is not installed; make test installs it (apt-get install kcat)")
		}
		t.Skip("kcat not installed; make test installs it")
	}
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	rec := simpleBatch(0, 3, -1, 0)
	defer rec.Release()
	wantOK(t, env.put(t, cmdDesc(map[string]any{"topic": topic, "key_field": "name"}), simpleSchema, batchMeta(rec, checkpoint(1))))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, kcat, "-C", "-b", strings.Join(env.brokers, ","), "-t", topic,
		"-o", "beginning", "-e", "-q", "-X", "isolation.level=read_committed", "-f", "%k|%s\n").CombinedOutput()
	if err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	want := `n0|{"id":0,"name":"n0","score":0,"at":"2023-11-14T22:13:20.000000Z"}
n1|{"id":1,"name":"n1","score":0.3333333333333333,"at":"2023-11-14T22:13:20.000001Z"}
n2|{"id":2,"name":"n2","score":0.6666666666666666,"at":"2023-11-14T22:13:20.000002Z"}
`
	if string(out) != want {
		t.Fatalf("kcat read:\n%s\nwant:\n%s", out, want)
	}
}

// TestGracefulShutdown: on shutdown the server takes no new streams, lets an
// open one keep working for the grace period, then ends it with Unavailable
// (reason shutdown), aborting its open transaction.
func TestGracefulShutdown(t *testing.T) {
	env := startServer(t, func(f *flightsink.Config, _ *kafka.Config) { f.ShutdownGrace = 2 * time.Second })
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	ls, _, err := env.open(t, eosDesc(topic), simpleSchema)
	if err != nil {
		t.Fatal(err)
	}
	rec := simpleBatch(0, 10, -1, 0)
	defer rec.Release()
	ack, err := ls.checkpoint(rec, 1)
	mustAck(t, ack, err, map[string]any{"checkpoint": 1.0})

	probe := topic + "-probe"
	kafkatest.CreateTopic(t, env.brokers, probe, 1, nil)
	stopped := make(chan struct{})
	go func() { env.srv.Shutdown(context.Background()); close(stopped) }()
	waitFor(t, "the server to stop taking streams", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stream, err := env.client.DoPut(ctx)
		if err != nil {
			return status.Code(err) == codes.Unavailable
		}
		// The probe writes to a topic of its own: one that gets in before
		// the shutdown must not add rows to the topic under test.
		w := flight.NewRecordWriter(stream, ipc.WithSchema(simpleSchema))
		w.SetFlightDescriptor(pathDesc(probe))
		_ = w.Write(rec)
		_ = stream.CloseSend()
		res := readResults(stream)
		return res.code == codes.Unavailable
	})
	// Within the grace period the open stream still works.
	rec2 := simpleBatch(10, 10, -1, 0)
	defer rec2.Release()
	ack, err = ls.checkpoint(rec2, 2)
	mustAck(t, ack, err, map[string]any{"checkpoint": 2.0})
	rec3 := simpleBatch(20, 10, -1, 0)
	defer rec3.Release()
	ls.send(rec3, "")
	_, err = ls.ack()
	wantStatus(t, ls.statusOf(err), codes.Unavailable, string(flightsink.ReasonShutdown), "shutting down", "durable_checkpoint=2 durable_rows=20")
	<-stopped
	wantIDs(t, "read_committed", kafkatest.ReadCommitted(t, env.brokers, topic), 20)
}
