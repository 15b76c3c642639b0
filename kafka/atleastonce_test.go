package kafka

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flightsink/flightsink/internal/kafkatest"
)

// lingeringSink is a sink whose producers linger a minute (kgo's most),
// twice kafka.produce_timeout: a writer that waited for the linger would
// fail with "Kafka acknowledged none of N pending records".
func lingeringSink(t *testing.T, brokers []string, opts ...kgo.Opt) *Sink {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Brokers = brokers
	cfg.Linger = time.Minute
	cfg.ProduceTimeout = 30 * time.Second
	cfg.MaxExactlyOnceStreams = 1
	s, err := NewSink(cfg, zerolog.New(zerolog.NewTestWriter(t)), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// knowTopic has the shared producer learn the topic's partitions: it does
// from its first record to it, after which records are partitioned at once
// (a record to a topic it does not know yet waits for the linger, once).
func knowTopic(ctx context.Context, t *testing.T, s *Sink, topic string) {
	t.Helper()
	warm := records(topic, 0, "warm", 1)
	s.shared.Produce(ctx, &warm[0], func(_ *kgo.Record, err error) {
		if err != nil {
			t.Error(err)
		}
	})
	if err := s.shared.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func records(topic string, partition int32, stream string, n int) []kgo.Record {
	recs := make([]kgo.Record, n)
	for i := range recs {
		recs[i] = kgo.Record{Topic: topic, Partition: partition, Value: fmt.Appendf(nil, "%s-%d", stream, i)}
	}
	return recs
}

// TestAtLeastOnceEndDoesNotWaitForLinger: an at-least-once stream's end
// (and a checkpoint) sends its last batch at once, without waiting for
// kafka.linger (a minute here) and without flushing the shared producer,
// while another stream has records on another partition; that stream's end
// does the same. Kafka then holds every record of both, once.
func TestAtLeastOnceEndDoesNotWaitForLinger(t *testing.T) {
	brokers, _ := kafkatest.Brokers(t)
	s := lingeringSink(t, brokers)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, brokers, topic, 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := s.Topic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	knowTopic(ctx, t, s, topic)

	other := s.OpenAtLeastOnce().(*atLeastOnce)
	if err := other.ProduceBatch(ctx, records(topic, 1, "other", 10), nil); err != nil {
		t.Fatal(err)
	}
	if err := other.ProduceBatch(ctx, records(topic, 1, "other-b", 10), nil); err != nil {
		t.Fatal(err)
	}

	one := s.OpenAtLeastOnce().(*atLeastOnce)
	if err := one.ProduceBatch(ctx, records(topic, 0, "one", 50), nil); err != nil {
		t.Fatal(err)
	}
	if err := one.Checkpoint(ctx, Progress{}); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if err := one.ProduceBatch(ctx, records(topic, 0, "one-b", 50), nil); err != nil {
		t.Fatal(err)
	}
	if err := one.Close(ctx, true, Progress{}); err != nil {
		t.Fatalf("close: %v", err)
	}
	if pending, _ := one.Backlog(); pending != 0 {
		t.Fatalf("closed writer holds %d bytes", pending)
	}
	// (kgo drains per broker: the other stream's batch on this broker may
	// have gone out with the first stream's; what matters is that neither
	// end waits for the linger, nor for the other stream's records)
	if err := other.Close(ctx, true, Progress{}); err != nil {
		t.Fatalf("other close: %v", err)
	}
	got := map[string]int{}
	for _, r := range kafkatest.ReadUncommitted(t, brokers, topic) {
		got[fmt.Sprintf("%d/%s", r.Partition, r.Value)]++
	}
	for _, want := range [][]kgo.Record{records(topic, 0, "warm", 1), records(topic, 0, "one", 50), records(topic, 0, "one-b", 50),
		records(topic, 1, "other", 10), records(topic, 1, "other-b", 10)} {
		for _, r := range want {
			if k := fmt.Sprintf("%d/%s", r.Partition, r.Value); got[k] != 1 {
				t.Errorf("record %s: %d copies in Kafka, want 1", k, got[k])
			}
		}
	}
	if len(got) != 121 {
		t.Errorf("%d distinct records in Kafka, want 121", len(got))
	}
}

// TestAtLeastOnceAbandonedStreamKeepsWhatItSent: a stream that ends
// without a clean end (Close without commit) still delivers every batch it
// handed over, the held-back one too, as it did when every batch was
// produced at once.
func TestAtLeastOnceAbandonedStreamKeepsWhatItSent(t *testing.T) {
	brokers, _ := kafkatest.Brokers(t)
	s := lingeringSink(t, brokers)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, brokers, topic, 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	knowTopic(ctx, t, s, topic)
	w := s.OpenAtLeastOnce().(*atLeastOnce)
	for i := range 3 {
		if err := w.ProduceBatch(ctx, records(topic, 0, fmt.Sprint("b", i), 5), nil); err != nil {
			t.Fatal(err)
		}
	}
	canceled, cancelStream := context.WithCancel(ctx)
	cancelStream()
	if err := w.Close(canceled, false, Progress{}); err != nil {
		t.Fatal(err)
	}
	// the shared producer delivers what it was given (a clean end of
	// another writer on the same partition sends it along, linger or not)
	after := s.OpenAtLeastOnce().(*atLeastOnce)
	if err := after.ProduceBatch(ctx, records(topic, 0, "after", 1), nil); err != nil {
		t.Fatal(err)
	}
	if err := after.Close(ctx, true, Progress{}); err != nil {
		t.Fatal(err)
	}
	var values []string
	for _, r := range kafkatest.ReadUncommitted(t, brokers, topic) {
		values = append(values, string(r.Value))
	}
	want := []string{"warm-0", "b0-0", "b0-1", "b0-2", "b0-3", "b0-4", "b1-0", "b1-1", "b1-2", "b1-3", "b1-4", "b2-0", "b2-1", "b2-2", "b2-3", "b2-4", "after-0"}
	if fmt.Sprint(values) != fmt.Sprint(want) {
		t.Fatalf("partition 0 holds %v, want %v", values, want)
	}
}
