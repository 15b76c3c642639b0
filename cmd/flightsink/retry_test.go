package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/flightsink/flightsink/kafka"
)

// TestRetryUnavailable: a start-up step that fails because Kafka is
// unavailable is tried again until it succeeds; one that fails otherwise
// ends at once; and the tries stop at kafka.startup_timeout with the last
// error and how many tries there were.
func TestRetryUnavailable(t *testing.T) {
	quick := func(int) time.Duration { return time.Millisecond }
	outage := fmt.Errorf("%w: reading config of topic %q: broker closed the connection", kafka.ErrUnavailable, "flightsink-replicas")
	ctx := context.Background()

	tries := 0
	err := retryUnavailable(ctx, "claiming the replica name", func(context.Context) error {
		if tries++; tries < 3 {
			return outage
		}
		return nil
	}, time.Minute, zerolog.Nop(), quick)
	if err != nil || tries != 3 {
		t.Fatalf("a step that fails twice with an outage: %v after %d tries; want success on the third", err, tries)
	}

	tries = 0 // a dropped connection, as kgo reports it, is an outage too
	dropped := fmt.Errorf("re-initialising transactional id p-4: %w", io.EOF)
	err = retryUnavailable(ctx, "preparing the producers", func(context.Context) error {
		if tries++; tries < 2 {
			return dropped
		}
		return nil
	}, time.Minute, zerolog.Nop(), quick)
	if err != nil || tries != 2 {
		t.Fatalf("a step that fails once with a dropped connection: %v after %d tries; want success on the second", err, tries)
	}

	tries = 0
	bad := errors.New("kafka.replica_topic: \"x\" has no partition 0")
	err = retryUnavailable(ctx, "claiming the replica name", func(context.Context) error { tries++; return bad }, time.Minute, zerolog.Nop(), quick)
	if !errors.Is(err, bad) || tries != 1 {
		t.Fatalf("a step that fails for good: %v after %d tries; want its error after one", err, tries)
	}

	tries = 0
	err = retryUnavailable(ctx, "preparing the producers", func(context.Context) error { tries++; return outage }, 20*time.Millisecond, zerolog.Nop(), quick)
	if !errors.Is(err, kafka.ErrUnavailable) || !strings.Contains(err.Error(), "gave up after") || tries < 2 {
		t.Fatalf("an outage past kafka.startup_timeout: %v after %d tries; want ErrUnavailable and the count", err, tries)
	}
	t.Log(err)
}
