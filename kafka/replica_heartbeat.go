package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The heartbeats of a held replica claim: a transactional producer of its
// own writes a heartbeat record every interval; losing or regaining the
// claim is reported.

func (c *ReplicaClaim) newProducer() (*kgo.Client, error) {
	s := c.sink
	cl, err := kgo.NewClient(append(s.baseOpts(),
		kgo.TransactionalID(s.cfg.ClaimTransactionalID(c.name)),
		kgo.TransactionTimeout(c.ttl),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MetadataMinAge(100*time.Millisecond),
	)...)
	if err != nil {
		return nil, fmt.Errorf("kafka.replica claim producer: %w", err)
	}
	return cl, nil
}

// beatOnce writes one record of kind in a transaction of the claim
// producer, first aborting what an earlier heartbeat could not end (Kafka
// was unreachable). ctx bounds every step.
func (c *ReplicaClaim) beatOnce(ctx context.Context, cl *kgo.Client, kind string) error {
	rec := c.self
	rec.Kind, rec.Replica, rec.At, rec.ReplacesOffset = kind, c.name, c.now().UTC(), -1
	if kind == claimKindBeat {
		rec.TxnIDs = c.sink.liveIDs()
	}
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := cl.AbortBufferedRecords(ctx); err != nil {
		return err
	}
	if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil { // a no-op unless one is left open
		return fmt.Errorf("aborting an unfinished heartbeat transaction: %w", err)
	}
	if _, _, err := cl.ProducerID(ctx); err != nil { // so BeginTransaction does not wait on its own
		return err
	}
	if err := cl.BeginTransaction(); err != nil {
		return err
	}
	// Not ProduceSync: kgo does not give up on a record already sent when
	// ctx ends (after a broker restart it can wait on it for good).
	produced := make(chan error, 1)
	cl.Produce(ctx, &kgo.Record{Topic: c.sink.cfg.ReplicaTopic, Partition: 0, Key: []byte(c.key), Value: v},
		func(_ *kgo.Record, err error) { produced <- err })
	select {
	case err = <-produced:
	case <-ctx.Done():
		err = fmt.Errorf("writing the %s record: %w", kind, ctx.Err())
	}
	if err == nil {
		err = cl.EndTransaction(ctx, kgo.TryCommit)
	}
	if err != nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.interval+time.Second)
		_ = cl.AbortBufferedRecords(actx)
		_ = cl.EndTransaction(actx, kgo.TryAbort)
		cancel()
	}
	return err
}

// isFencedErr reports a producer that can never write again: a newer
// InitProducerID of its transactional id exists (or the broker bumped the
// epoch when a transaction timed out). Replica heartbeats and stream
// writers (fencedOrAborted) share it.
func isFencedErr(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.InvalidProducerIDMapping)
}

// run heartbeats every TTL/3 until Release.
func (c *ReplicaClaim) run(ctx context.Context) {
	defer close(c.done)
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.beat(ctx)
	}
}

// beat makes one heartbeat (recovering the producer after a failure) and
// reports a change of state.
func (c *ReplicaClaim) beat(ctx context.Context) {
	c.mu.Lock()
	cl := c.cl
	lost := c.lost != nil
	c.mu.Unlock()
	if lost {
		return
	}
	start := c.now()
	bctx, cancel := context.WithTimeout(ctx, c.interval)
	err := c.beatOnce(bctx, cl, claimKindBeat)
	cancel()
	if err != nil && ctx.Err() == nil {
		err = c.recover(ctx, err)
	}
	c.mu.Lock()
	c.lastErr = err
	if err == nil {
		c.lastOK = start
	}
	c.mu.Unlock()
	if err != nil && c.Err() == nil {
		c.sink.log.Debug().Err(err).Str("replica", c.name).Msg("a heartbeat of the replica claim failed; retrying")
	}
	c.report()
}

// recover follows a failed heartbeat. If the log shows another holder, the
// name is lost for good. Otherwise a new claim producer takes over from the
// failed one (a fresh InitProducerID aborts whatever the old one left open,
// and is the way back after the broker bumped the epoch of a heartbeat
// transaction that timed out) and heartbeats.
func (c *ReplicaClaim) recover(ctx context.Context, failed error) error {
	ctx, cancel := context.WithTimeout(ctx, 2*c.sink.cfg.ProduceTimeout)
	defer cancel()
	h, err := c.sink.holderNow(ctx, c.key)
	if err != nil {
		return fmt.Errorf("%v (and reading the replica topic: %v)", failed, err)
	}
	if h != nil && h.rec.Session != c.self.Session {
		c.mu.Lock()
		c.lost = fmt.Errorf("%w: kafka.replica %q was taken over by %s (this server's heartbeats had not reached Kafka for kafka.replica_claim_ttl, or another server was given the same name); "+
			"this server takes no more exactly-once streams: restart it with its own kafka.replica (FLIGHTSINK_KAFKA_REPLICA): %v",
			ErrReplicaNotHeld, c.name, h.rec.describe(), failed)
		c.mu.Unlock()
		return c.lost
	}
	cl, err := c.newProducer()
	if err != nil {
		return err
	}
	if err := c.beatOnce(ctx, cl, claimKindBeat); err != nil {
		cl.Close()
		return fmt.Errorf("%v (and with a new claim producer: %v)", failed, err)
	}
	c.mu.Lock()
	old := c.cl
	c.cl = cl
	c.mu.Unlock()
	old.Close()
	c.sink.log.Info().Str("replica", c.name).AnErr("after", failed).Msg("replica claim producer re-initialised")
	return nil
}

// report calls onChange when the state changed since the last report.
func (c *ReplicaClaim) report() {
	st := c.Status()
	c.mu.Lock()
	changed := st.Held != c.held
	c.held = st.Held
	c.mu.Unlock()
	if !changed {
		return
	}
	if st.Held {
		c.sink.log.Info().Str("replica", c.name).Msg("replica claim renewed: taking exactly-once streams again")
	} else {
		c.sink.log.Error().Err(st.Err).Str("replica", c.name).Msg("replica claim not held: taking no exactly-once streams")
	}
	if c.onChange != nil {
		c.onChange(st)
	}
}
