package flightsink_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/flightsink/flightsink/flightsink"
	"github.com/flightsink/flightsink/internal/kafkatest"
	"github.com/flightsink/flightsink/kafka"
)

// TestStreamQueue: with every slot taken, a new stream waits for one
// (then runs, and its rows land), a stream beyond flight.max_queued_streams
// is refused at once, a client that goes away stops waiting, and a wait
// longer than flight.stream_queue_timeout ends in too_many_streams naming
// the setting.
func TestStreamQueue(t *testing.T) {
	env := startServer(t, func(f *flightsink.Config, _ *kafka.Config) {
		f.MaxStreams, f.MaxQueuedStreams, f.StreamQueueTimeout = 1, 1, 2*time.Minute
	})
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	holder, _, err := env.open(t, eosDesc(topic), simpleSchema)
	if err != nil {
		t.Fatal(err)
	}
	rec := simpleBatch(0, 3, -1, 0)
	defer rec.Release()

	queued := make(chan putResult, 1)
	go func() { queued <- env.put(t, eosDesc(topic), simpleSchema, batch(rec)) }()
	waitFor(t, "the second stream to wait for a slot", func() bool { return env.srv.WaitingStreams() == 1 })

	res := env.put(t, eosDesc(topic), simpleSchema, batch(rec))
	wantStatus(t, res, codes.ResourceExhausted, string(flightsink.ReasonTooManyStreams), "flight.max_streams", "flight.max_queued_streams")

	wantOK(t, holder.finish()) // the slot frees: the waiting stream runs
	wantOK(t, <-queued)
	got := kafkatest.ReadCommitted(t, env.brokers, topic)
	if len(got) != 3 || !strings.Contains(string(got[0].Value), `"name":"n0"`) {
		t.Fatalf("after the wait: %d records, want the waiting stream's 3", len(got))
	}

	// A client that goes away while waiting leaves the queue.
	holder, _, err = env.open(t, eosDesc(topic), simpleSchema)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	if _, err := env.client.DoPut(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a stream waiting", func() bool { return env.srv.WaitingStreams() == 1 })
	cancel()
	waitFor(t, "the cancelled stream to leave the queue", func() bool { return env.srv.WaitingStreams() == 0 })
	wantOK(t, holder.finish())
	waitFor(t, "no stream open", func() bool { return env.srv.ActiveStreams() == 0 })
}

// TestStreamQueueTimeout: a stream that waits out flight.stream_queue_timeout
// is refused, retryable, naming the setting; nothing of it is written.
func TestStreamQueueTimeout(t *testing.T) {
	env := startServer(t, func(f *flightsink.Config, _ *kafka.Config) {
		f.MaxStreams, f.StreamQueueTimeout = 1, 300*time.Millisecond
	})
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	holder, _, err := env.open(t, eosDesc(topic), simpleSchema)
	if err != nil {
		t.Fatal(err)
	}
	rec := simpleBatch(0, 3, -1, 0)
	defer rec.Release()
	res := env.put(t, eosDesc(topic), simpleSchema, batch(rec))
	wantStatus(t, res, codes.ResourceExhausted, string(flightsink.ReasonTooManyStreams), "waited flight.stream_queue_timeout (300ms)")
	if !strings.Contains(res.message, "retry later") {
		t.Errorf("message %q should say what to do", res.message)
	}
	wantOK(t, holder.finish())
	if n := len(kafkatest.ReadCommitted(t, env.brokers, topic)); n != 0 {
		t.Fatalf("%d records written, want none", n)
	}
}

// TestStreamQueueShutdown: a stream waiting for a slot when the server
// shuts down ends at once with Unavailable (reason shutdown), retryable on
// another replica: it neither waits out its queue timeout nor the open
// stream's grace period, which goes on working and ends cleanly.
func TestStreamQueueShutdown(t *testing.T) {
	env := startServer(t, func(f *flightsink.Config, _ *kafka.Config) {
		f.MaxStreams, f.StreamQueueTimeout, f.ShutdownGrace = 1, 10*time.Minute, 10*time.Minute
	})
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	holder, _, err := env.open(t, eosDesc(topic), simpleSchema)
	if err != nil {
		t.Fatal(err)
	}
	rec := simpleBatch(0, 3, -1, 0)
	defer rec.Release()
	waiting := make(chan putResult, 1)
	go func() { waiting <- env.put(t, eosDesc(topic), simpleSchema, batch(rec)) }()
	waitFor(t, "a stream waiting for a slot", func() bool { return env.srv.WaitingStreams() == 1 })

	stopped := make(chan struct{})
	go func() { env.srv.Shutdown(context.Background()); close(stopped) }()
	wantStatus(t, <-waiting, codes.Unavailable, string(flightsink.ReasonShutdown), "shutting down")
	// Answered while the open stream is still in its grace period.
	ack, err := holder.checkpoint(rec, 1)
	mustAck(t, ack, err, map[string]any{"checkpoint": 1.0})
	wantOK(t, holder.finish())
	<-stopped
	if n := len(kafkatest.ReadCommitted(t, env.brokers, topic)); n != 3 {
		t.Fatalf("%d records committed, want the open stream's 3", n)
	}
}
