package kafka

import (
	"github.com/flightsink/flightsink/kafka/sinkapi"

	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Writer is how one stream hands its records to Kafka. A Writer is used by
// one goroutine at a time: the stream's read loop, or the goroutine it runs
// a Checkpoint on while it holds its next batches back (Backlog is the one
// call allowed meanwhile); produce callbacks only record errors and counts.
type Writer interface {
	// ProduceBatch hands records to the producer, in order. It blocks while
	// this writer has kafka.max_buffered_bytes unacknowledged, which
	// back-pressures the Flight stream. The records and the bytes they point
	// to must not change until acked runs: once, on a producer goroutine,
	// when every record handed over is acknowledged or failed (then the
	// caller may reuse them). acked may be nil. It returns the first error
	// of any earlier record of this writer.
	ProduceBatch(ctx context.Context, recs []kgo.Record, acked func()) error
	// Produce is ProduceBatch for records a Plan built (*Records): they go
	// back to their pool once acknowledged.
	Produce(ctx context.Context, c sinkapi.Chunk) error
	// Checkpoint makes every record produced so far durable: at-least-once
	// waits for this writer's own records to be acknowledged (not for other
	// streams' records); exactly-once commits the open transaction.
	// p is the progress a named exactly-once writer stores with the commit.
	Checkpoint(ctx context.Context, p Progress) error
	// Close ends the writer. With commit, it first makes the tail durable as
	// Checkpoint does; without, an exactly-once writer aborts its open
	// transaction (an at-least-once writer cannot take back what it sent).
	// Close always releases what the writer holds.
	Close(ctx context.Context, commit bool, p Progress) error
	// Backlog returns the bytes this writer holds unacknowledged and the
	// most it may hold (kafka.max_buffered_bytes), counted as ProduceBatch
	// counts them: key + value + 64 per record. A caller holding records of
	// its own keeps within the same budget. Safe to call during Checkpoint.
	Backlog() (pending, limit int)
}

// inflight tracks one writer's unacknowledged records. kgo's own record
// timeout cannot bound the wait: it measures from each record's timestamp,
// which flightsink takes from the client's data. So waits are bounded here:
// when Kafka acknowledges nothing for kafka.produce_timeout, the writer
// fails with ErrUnavailable.
type inflight struct {
	maxBytes int
	timeout  time.Duration
	mapErr   func(error) error // turns a record's error into the stream's; mapProduceError if nil
	obs      Observer
	// authFailure is the sink's last authentication failure at or after a
	// time, nil if none: a timeout caused by one says so.
	authFailure func(since time.Time) error
	// forget drops a topic Kafka reported missing from the sink's topic
	// cache (nil: nothing to tell).
	forget func(topic string)

	mu      sync.Mutex
	records int
	bytes   int
	err     error
	wake    chan struct{}   // closed at the next completion; nil when nobody waits
	offsets sinkapi.Offsets // acknowledged offsets (ReportOffsets); nil: not noted
	skip    string          // a topic whose offsets are not noted (the progress topic)
}

// ReportOffsets implements sinkapi.Writer.
func (f *inflight) ReportOffsets() {
	f.mu.Lock()
	if f.offsets == nil {
		f.offsets = sinkapi.Offsets{}
	}
	f.mu.Unlock()
}

// TakeOffsets implements sinkapi.Writer.
func (f *inflight) TakeOffsets() sinkapi.Offsets {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.offsets
	if o != nil {
		f.offsets = sinkapi.Offsets{}
	}
	return o
}

func recordSize(r *kgo.Record) int { return len(r.Key) + len(r.Value) + 64 }

// add counts a record about to be produced.
func (f *inflight) add(r *kgo.Record) {
	size := recordSize(r)
	f.mu.Lock()
	f.records++
	f.bytes += size
	f.mu.Unlock()
}

// tryAdd counts a record of size bytes if there is room and no record has
// failed: waitRoom and add in one lock, the common case.
func (f *inflight) tryAdd(size int) bool {
	f.mu.Lock()
	ok := f.err == nil && f.bytes < f.maxBytes
	if ok {
		f.records++
		f.bytes += size
	}
	f.mu.Unlock()
	return ok
}

// done is the produce promise: it only counts and keeps the first error.
// (The buffered-bytes gauge is kept per batch: see batchPromise.)
func (f *inflight) done(r *kgo.Record, err error) {
	size := recordSize(r)
	if err != nil && !errors.Is(err, kgo.ErrAborting) {
		f.obs.ProduceError(ErrorCode(err))
	}
	if err != nil && f.forget != nil && (errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.UnknownTopicID)) {
		f.forget(r.Topic)
	}
	f.mu.Lock()
	f.records--
	f.bytes -= size
	if err == nil && f.offsets != nil && r.Topic != f.skip {
		f.offsets.Add(r.Topic, r.Partition, r.Offset)
	}
	if err != nil && f.err == nil {
		if f.mapErr != nil {
			f.err = f.mapErr(err)
		} else {
			f.err = mapProduceError(err)
		}
	}
	if f.wake != nil {
		close(f.wake)
		f.wake = nil
	}
	f.mu.Unlock()
}

// Backlog implements Writer.Backlog.
func (f *inflight) Backlog() (pending, limit int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bytes, f.maxBytes
}

// batchPromise counts one ProduceBatch call's records down to acked. It
// starts one above the count: ProduceBatch holds that one until it has
// handed over every record it will, so acked cannot run early.
type batchPromise struct {
	left  atomic.Int64
	done  func(*kgo.Record, error) // the writer's per-record promise
	acked func()
	bytes int64 // handed over; set before ProduceBatch lets go of its hold
	obs   Observer
}

func (b *batchPromise) promise(r *kgo.Record, err error) {
	b.done(r, err)
	b.release(1)
}

func (b *batchPromise) release(n int64) {
	if b.left.Add(-n) != 0 {
		return
	}
	b.obs.BufferedBytes(-b.bytes)
	if b.acked != nil {
		b.acked()
	}
}

// produceBatch is ProduceBatch for both writers: produce hands one record
// to the client with the given promise.
func (f *inflight) produceBatch(ctx context.Context, recs []kgo.Record, done func(*kgo.Record, error), acked func(),
	produce func(*kgo.Record, func(*kgo.Record, error))) error {
	b := &batchPromise{done: done, acked: acked, obs: f.obs}
	b.left.Store(int64(len(recs)) + 1)
	var handed int64
	// finish lets go of the hold, with the gauge updated once per batch
	// (not twice per record) before any completion can read b.bytes.
	finish := func(unsent int64) {
		b.bytes = handed
		f.obs.BufferedBytes(handed)
		b.release(unsent + 1)
	}
	for i := range recs {
		size := recordSize(&recs[i])
		if !f.tryAdd(size) {
			if err := f.waitRoom(ctx); err != nil {
				finish(int64(len(recs) - i))
				return err
			}
			f.add(&recs[i])
		}
		handed += int64(size)
		produce(&recs[i], b.promise)
	}
	finish(0)
	return nil
}

// RecordSize is what a record counts against kafka.max_buffered_bytes.
func RecordSize(r *kgo.Record) int { return recordSize(r) }

// waitUntil blocks until ok() holds (checked under the lock), a record
// failed, ctx ends, or Kafka acknowledged nothing for the timeout.
func (f *inflight) waitUntil(ctx context.Context, what string, ok func() bool) error {
	// The common case, room or nothing pending, needs no timer: this runs
	// once per record.
	f.mu.Lock()
	if f.err != nil || ok() {
		err := f.err
		f.mu.Unlock()
		return err
	}
	f.mu.Unlock()
	timer := time.NewTimer(f.timeout)
	defer timer.Stop()
	start := time.Now()
	for {
		f.mu.Lock()
		if f.err != nil || ok() {
			err := f.err
			f.mu.Unlock()
			return err
		}
		if f.wake == nil {
			f.wake = make(chan struct{})
		}
		wake := f.wake
		pending := f.records
		f.mu.Unlock()
		select {
		case <-wake:
			if !timer.Stop() {
				<-timer.C
			}
			timer.Reset(f.timeout)
			start = time.Now()
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, context.Cause(ctx))
		case <-timer.C:
			if f.authFailure != nil {
				if ae := f.authFailure(start); ae != nil {
					return fmt.Errorf("%s: Kafka acknowledged none of %d pending records within kafka.produce_timeout (%v): %w",
						what, pending, f.timeout, ae)
				}
			}
			return fmt.Errorf("%w: %s: Kafka acknowledged none of %d pending records within kafka.produce_timeout (%v)",
				ErrUnavailable, what, pending, f.timeout)
		}
	}
}

// waitRoom blocks while the writer holds maxBytes unacknowledged.
func (f *inflight) waitRoom(ctx context.Context) error {
	return f.waitUntil(ctx, "waiting for Kafka to make room (kafka.max_buffered_bytes)", func() bool { return f.bytes < f.maxBytes })
}

// waitAll blocks until every record is acknowledged.
func (f *inflight) waitAll(ctx context.Context) error {
	return f.waitUntil(ctx, "waiting for Kafka to acknowledge", func() bool { return f.records == 0 })
}
