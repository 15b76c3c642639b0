package flightsink_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	client "github.com/flightsink/flightsink/clients/go/fsclient"
	"github.com/flightsink/flightsink/flightsink"
	"github.com/flightsink/flightsink/internal/kafkatest"
	"github.com/flightsink/flightsink/kafka"
)

// TestGoClientPipelinedCheckpoints: the Go client's MarkCheckpoint returns
// at once, Acked follows the acks as they arrive, WaitCheckpoint returns
// the (possibly coalesced) ack covering a checkpoint, and a failure after
// pipelined checkpoints reaches WaitCheckpoint as the stream's error with
// what is durable.
func TestGoClientPipelinedCheckpoints(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := client.Dial(env.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	w, err := c.Open(ctx, client.Descriptor{Topic: topic, Delivery: "exactly_once", WriterID: "goc-" + topic}, simpleSchema)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		rec := simpleBatch(i*10, 10, -1, 0)
		err := w.Write(rec)
		rec.Release()
		if err != nil {
			t.Fatal(err)
		}
		n, err := w.MarkCheckpoint()
		if err != nil || n != int64(i+1) {
			t.Fatalf("MarkCheckpoint = %d, %v; want %d", n, err, i+1)
		}
	}
	ack, err := w.WaitCheckpoint(ctx, 7)
	if err != nil || ack.Checkpoint < 7 || ack.TotalRows != ack.Checkpoint*10 {
		t.Fatalf("WaitCheckpoint(7) = %+v, %v", ack, err)
	}
	if ack, err = w.WaitCheckpoint(ctx, 20); err != nil || ack.Checkpoint != 20 || ack.TotalRows != 200 {
		t.Fatalf("WaitCheckpoint(20) = %+v, %v", ack, err)
	}
	if got := w.Acked(); got != ack {
		t.Fatalf("Acked() = %+v, want %+v", got, ack)
	}
	done, err := w.Close(ctx)
	if err != nil || done.TotalRows != 200 || done.LastCheckpoint != 20 {
		t.Fatalf("Close = %+v, %v", done, err)
	}
	wantIDs(t, "read_committed", kafkatest.ReadCommitted(t, env.brokers, topic), 200)

	// A bad row after a pipelined checkpoint: the wait for a later checkpoint
	// gets the stream's error, which says checkpoint 1 of this stream is durable.
	w, err = c.Open(ctx, client.Descriptor{Topic: topic, Delivery: "exactly_once"}, simpleSchema)
	if err != nil {
		t.Fatal(err)
	}
	good, bad := simpleBatch(200, 10, -1, 0), simpleBatch(210, 5, 1, 2_000_000)
	defer good.Release()
	defer bad.Release()
	if err := w.Write(good); err != nil {
		t.Fatal(err)
	}
	if _, err := w.MarkCheckpoint(); err != nil {
		t.Fatal(err)
	}
	_ = w.Write(bad)
	n, _ := w.MarkCheckpoint()
	_, err = w.WaitCheckpoint(ctx, n)
	var fe *client.Error
	if !errors.As(err, &fe) || fe.Code != codes.InvalidArgument || fe.Reason != "bad_row" {
		t.Fatalf("WaitCheckpoint after a bad row: %v; want InvalidArgument bad_row", err)
	}
	if want := "durable_checkpoint=1 durable_rows=10"; !strings.Contains(fe.Message, want) {
		t.Fatalf("error %q does not say %q", fe.Message, want)
	}
	wantIDs(t, "read_committed", kafkatest.ReadCommitted(t, env.brokers, topic), 210)
}

// TestGoClientSlicesByRows: a run-end encoded batch is small in bytes but
// not in rows; the Go client slices it under the server's
// flight.max_batch_rows, and without slicing the server refuses it.
func TestGoClientSlicesByRows(t *testing.T) {
	env := startServer(t, func(f *flightsink.Config, _ *kafka.Config) { f.MaxBatchRows = 1000 })
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := client.Dial(env.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rec := expandingBatch(t, reeType, 6000, func(i int) string { return expandValue(i, 6000)[:10] }, -1)
	defer rec.Release()
	w, err := c.Open(ctx, client.Descriptor{Topic: topic, Delivery: "exactly_once"}, rec.Schema(), client.MaxBatchRows(1000))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if done, err := w.Close(ctx); err != nil || done.TotalRows != 6000 {
		t.Fatalf("Close = %+v, %v", done, err)
	}
	if n := kafkatest.CountCommitted(t, env.brokers, topic); n != 6000 {
		t.Fatalf("%d records in Kafka, want 6000", n)
	}
	w, err = c.Open(ctx, client.Descriptor{Topic: topic, Delivery: "exactly_once"}, rec.Schema(), client.MaxBatchRows(10_000))
	if err != nil {
		t.Fatal(err)
	}
	_ = w.Write(rec)
	_, err = w.Close(ctx)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code != codes.ResourceExhausted || ce.Reason != "batch_too_large" ||
		!strings.Contains(ce.Message, "flight.max_batch_rows (1000)") {
		t.Fatalf("unsliced: %v, want ResourceExhausted batch_too_large naming flight.max_batch_rows", err)
	}
}
