package kafka

import (
	"context"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flightsink/flightsink/kafka/sinkapi"
)

// OpenAtLeastOnce returns a writer on the shared idempotent producer.
func (s *Sink) OpenAtLeastOnce() sinkapi.Writer {
	w := &atLeastOnce{cl: s.shared, bg: s.bg,
		inflight: inflight{maxBytes: s.cfg.MaxBufferedBytes, timeout: s.cfg.ProduceTimeout, obs: s.obs,
			mapErr: s.mapProduceError, authFailure: s.creds.failureSince, forget: s.topics.forget}}
	w.promise = w.done
	return w
}

// atLeastOnce tracks its own produce promises on the shared client, so a
// checkpoint waits for this stream's records only (client.Flush would wait
// for every other stream's too).
//
// It keeps the newest batch it is given until the next one comes, a
// checkpoint or the end: a batch followed by another is produced as usual
// (lingering up to kafka.linger to fill producer batches), but the last
// one before a checkpoint or the end is produced as kgo's ProduceSync
// produces, which stops the linger of the partitions it goes to, so the
// records are sent at once. A small stream's end then waits for Kafka, not
// for the linger, and without flushing the shared client (which would wait
// for every other stream's records). Other streams' records on those
// partitions go out with them; nothing else changes for them.
type atLeastOnce struct {
	inflight
	cl      *kgo.Client
	bg      context.Context          // the sink's context: see produce
	promise func(*kgo.Record, error) // one closure for all records: no per-record allocation

	// The batch held back (nil: none), and its bytes as Backlog counts
	// them (read by Backlog during a Checkpoint, hence atomic).
	held      []kgo.Record
	heldAcked func()
	heldBytes atomic.Int64
}

func (w *atLeastOnce) Produce(ctx context.Context, c sinkapi.Chunk) error {
	recs := c.(*Records)
	return w.ProduceBatch(ctx, recs.records, recs.acked())
}

// ProduceBatch hands the batch held back so far to the producer and holds
// recs back in its place (see atLeastOnce).
func (w *atLeastOnce) ProduceBatch(ctx context.Context, recs []kgo.Record, acked func()) error {
	if err := w.produceHeld(ctx, false); err != nil {
		return err
	}
	if len(recs) == 0 {
		return w.produceBatch(ctx, recs, w.promise, acked, w.produce)
	}
	var size int
	for i := range recs {
		size += recordSize(&recs[i])
	}
	w.held, w.heldAcked = recs, acked
	w.heldBytes.Store(int64(size))
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// produceHeld hands the held batch over, if any; now ends the linger of
// its partitions (when the writer has room for all of it: otherwise plenty
// is in flight and the linger hardly matters).
func (w *atLeastOnce) produceHeld(ctx context.Context, now bool) error {
	recs, acked := w.held, w.heldAcked
	if recs == nil {
		return nil
	}
	w.held, w.heldAcked = nil, nil
	defer w.heldBytes.Store(0)
	if pending, limit := w.inflight.Backlog(); !now || pending+int(w.heldBytes.Load()) > limit {
		return w.produceBatch(ctx, recs, w.promise, acked, w.produce)
	}
	// With room for every record, produceBatch counts them all without
	// waiting (acknowledgements only make more room), handing each to the
	// collecting func below; ProduceSync then buffers them together and
	// unlingers their partitions. Its results go to the batch's promise as
	// they would have come from Produce. The goroutine ends once the last
	// record is acknowledged or failed, as the writer's own wait does.
	ptrs := make([]*kgo.Record, 0, len(recs))
	var promise func(*kgo.Record, error)
	err := w.produceBatch(ctx, recs, w.promise, acked, func(r *kgo.Record, p func(*kgo.Record, error)) {
		ptrs, promise = append(ptrs, r), p
	})
	if len(ptrs) > 0 {
		go func() {
			for _, res := range w.cl.ProduceSync(w.bg, ptrs...) {
				promise(res.Record, res.Err)
			}
		}()
	}
	return err
}

func (w *atLeastOnce) produce(r *kgo.Record, promise func(*kgo.Record, error)) {
	// Records on the shared client get the sink's context, never the
	// stream's: kgo fails every buffered record of a partition when the
	// first one's context ends, which would fail other streams' records.
	w.cl.Produce(w.bg, r, promise)
}

// Backlog implements Writer.Backlog: the held batch counts too.
func (w *atLeastOnce) Backlog() (pending, limit int) {
	pending, limit = w.inflight.Backlog()
	return pending + int(w.heldBytes.Load()), limit
}

func (w *atLeastOnce) Checkpoint(ctx context.Context, _ Progress) error {
	if err := w.produceHeld(ctx, true); err != nil {
		return err
	}
	return w.waitAll(ctx)
}

func (w *atLeastOnce) Close(ctx context.Context, commit bool, _ Progress) error {
	if commit {
		return w.Checkpoint(ctx, Progress{})
	}
	// Whatever the stream handed over goes to Kafka, held or not, as if
	// it had been produced at once: an at-least-once writer cannot take
	// back what it was given. The wait for room is bounded by
	// kafka.produce_timeout, not by the ended stream.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.timeout)
	defer cancel()
	_ = w.produceHeld(ctx, false)
	return nil
}
