package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Ping checks that the cluster answers within kafka.produce_timeout and
// accepts flightsink's credentials: a broker that refuses them fails it
// with an *AuthError that says so, not as unreachable.
//
// It asks every broker at once (those of the last metadata, or the seed
// brokers before any) and passes as soon as one answers: one broker of a
// cluster down must not fail it. (Asking one broker picked at random, as a
// request to "any broker" does, failed whenever the pick was the dead one
// and the retry did not come in time: readiness flapped with one broker of
// three down.)
func (s *Sink) Ping(ctx context.Context) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProduceTimeout)
	defer cancel()
	brokers := s.adminc.DiscoveredBrokers()
	if len(brokers) == 0 {
		brokers = s.adminc.SeedBrokers()
	}
	errs := make(chan error, len(brokers))
	for _, b := range brokers {
		go func(b *kgo.Broker) {
			// ApiVersions goes to the broker every time; a metadata request
			// could be answered from kgo's cache while every broker is
			// down. A new connection authenticates before it (kgo's sasl
			// step).
			_, err := b.RetriableRequest(ctx, kmsg.NewPtrApiVersionsRequest())
			errs <- err
		}(b)
	}
	var failed []error
	answered := false
	for range brokers { // every request ends before Ping returns
		if err := <-errs; err != nil {
			failed = append(failed, err)
		} else if !answered {
			answered = true
			cancel() // the others give up
		}
	}
	if answered {
		return nil
	}
	err := errors.Join(failed...)
	if len(failed) == 0 {
		err = errors.New("no broker known")
	}
	if ae := s.authError(err, start); ae != nil {
		return ae
	}
	return fmt.Errorf("%w: no broker of %v answered within kafka.produce_timeout (%v): %w",
		ErrUnavailable, s.cfg.Brokers, s.cfg.ProduceTimeout, err)
}
