package kafka

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/flightsink/flightsink/internal/kafkatest"
)

// describeCounter counts the DescribeConfigs requests a sink's clients
// write: one per topic look-up.
type describeCounter struct{ n atomic.Int64 }

func (c *describeCounter) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == kmsg.DescribeConfigs.Int16() && err == nil {
		c.n.Add(1)
	}
}

// TestTopicFactsAreCached: opening a stream to a topic looked up less
// than TopicInfoMaxAge ago asks Kafka nothing (Topic and Lookup alike);
// older facts are read again. A missing topic is never remembered, and a
// topic deleted while remembered is reported missing by the first writer
// that produces to it, after which the look-up says so too.
func TestTopicFactsAreCached(t *testing.T) {
	brokers, _ := kafkatest.Brokers(t)
	var count describeCounter
	cfg := DefaultConfig()
	cfg.Brokers = brokers
	cfg.ProduceTimeout = 30 * time.Second
	cfg.MaxExactlyOnceStreams = 1
	s, err := NewSink(cfg, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel), kgo.WithHooks(&count))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	now := time.Now()
	s.topics.now = func() time.Time { return now }
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	topic := kafkatest.TopicName(t)
	maxBytes := "500000"
	kafkatest.CreateTopic(t, brokers, topic, 3, map[string]*string{"max.message.bytes": &maxBytes})
	lookups := func() int64 { return count.n.Load() }
	info, err := s.Topic(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if info.Partitions != 3 || info.MaxMessageBytes != 500000 {
		t.Fatalf("topic facts: %+v", info)
	}
	first := lookups()
	if first == 0 {
		t.Fatal("the look-up sent no DescribeConfigs request (is the hook counting?)")
	}
	now = now.Add(TopicInfoMaxAge - time.Second)
	for range 3 {
		again, err := s.Topic(ctx, topic)
		if err != nil || again != info {
			t.Fatalf("cached Topic: %+v, %v; want %+v", again, err, info)
		}
		if again, err = s.Lookup(ctx, topic); err != nil || again != info {
			t.Fatalf("cached Lookup: %+v, %v; want %+v", again, err, info)
		}
	}
	if n := lookups(); n != first {
		t.Fatalf("%d DescribeConfigs requests for cached facts", n-first)
	}
	now = now.Add(time.Second)
	if _, err := s.Topic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	if lookups() == first {
		t.Fatalf("facts older than %v were not read again", TopicInfoMaxAge)
	}

	missing := topic + "-missing"
	for range 2 {
		if _, err := s.Topic(ctx, missing); !errors.Is(err, ErrTopicMissing) {
			t.Fatalf("missing topic: %v; want ErrTopicMissing", err)
		}
	}

	// the shared producer knows the topic too
	before := s.OpenAtLeastOnce().(*atLeastOnce)
	if err := before.ProduceBatch(ctx, records(topic, 0, "before", 1), nil); err != nil {
		t.Fatal(err)
	}
	if err := before.Close(ctx, true, Progress{}); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(kafkatest.Client(t, brokers))
	if resp, err := adm.DeleteTopic(ctx, topic); err != nil || resp.Err != nil {
		t.Fatalf("deleting %s: %v %v", topic, err, resp.Err)
	}
	// remembered for now: the first writer to produce to it finds out
	w := s.OpenAtLeastOnce().(*atLeastOnce)
	if err := w.ProduceBatch(ctx, records(topic, 0, "gone", 1), nil); err != nil {
		t.Fatal(err)
	}
	err = w.Close(ctx, true, Progress{})
	if !errors.Is(err, ErrTopicMissing) {
		t.Fatalf("producing to the deleted topic: %v; want ErrTopicMissing", err)
	}
	t.Logf("producing to the deleted topic: %v", err)
	if _, err := s.Topic(ctx, topic); !errors.Is(err, ErrTopicMissing) {
		t.Fatalf("look-up after the writer found the topic missing: %v; want ErrTopicMissing", err)
	}
}
