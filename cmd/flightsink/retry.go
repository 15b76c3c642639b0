package main

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/flightsink/flightsink/kafka"
)

// retryUnavailable runs a start-up step that needs Kafka (claiming the
// replica name, preparing the producers) until it succeeds, trying again
// with backoff while it fails because Kafka is out of reach
// (kafka.IsUnavailable: ErrUnavailable, a dropped or refused connection, a
// retriable Kafka error code), for at most timeout
// (kafka.startup_timeout, counted from the call) or until ctx ends. Any
// other error ends it at once.
//
// Kafka answering a ping does not mean every request succeeds: with one
// broker of a cluster down, a request that goes to it fails (the leader of
// the replica topic or of a progress partition moving, a config read sent
// to the dead broker), and a server starting then must wait it out like a
// stream does, not exit.
func retryUnavailable(ctx context.Context, what string, step func(context.Context) error, timeout time.Duration, log zerolog.Logger, wait backoff) error {
	deadline := time.Now().Add(timeout)
	for try := 1; ; try++ {
		err := step(ctx)
		if err == nil || !kafka.IsUnavailable(err) || permanent(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("stopped while %s: %w", what, err)
		}
		next := wait(try)
		if left := time.Until(deadline); left <= 0 {
			return fmt.Errorf("%s: %w (gave up after %d tries in kafka.startup_timeout %v)", what, err, try, timeout)
		} else if next > left {
			next = left
		}
		log.Warn().Err(err).Int("try", try).Stringer("next_try_in", next).Msg(what + ": Kafka is unavailable; trying again")
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("stopped while %s: %w", what, err)
		case <-t.C:
		}
	}
}
