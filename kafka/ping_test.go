package kafka

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"
)

// TestPingPassesWhileOneBrokerAnswers: of three seed brokers two refuse
// every connection (down) and one answers. Every Ping passes, even with a
// deadline too short for a retry after a pick of a dead broker: readiness
// does not flap while part of a cluster is down. With none answering it
// fails with ErrUnavailable.
func TestPingPassesWhileOneBrokerAnswers(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := DefaultConfig()
	cfg.Brokers = []string{deadBroker(t), c.ListenAddrs()[0], deadBroker(t)}
	cfg.ProduceTimeout = time.Second
	s, err := NewSink(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err := s.Ping(ctx)
		cancel()
		if err != nil {
			t.Fatalf("ping %d with one broker of three answering: %v", i, err)
		}
	}

	cfg.Brokers = []string{deadBroker(t), deadBroker(t)}
	down, err := NewSink(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	if err := down.Ping(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("ping with no broker answering: %v; want ErrUnavailable", err)
	}
}
