package kafka

import (
	"github.com/flightsink/flightsink/kafka/sinkapi"

	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// txnPool holds the transactional producers of anonymous exactly-once
// streams: ids <prefix>-p-<replica>-<n>, one stream at a time each. The set
// of ids is fixed, so broker state does not grow with the number of streams
// ever opened; a healthy producer is kept for the next stream, and the most
// recently returned slot is taken first, so opening is usually cheap.
type txnPool struct {
	mu      sync.Mutex
	free    []int // a stack of free slots
	clients []*kgo.Client
}

func newTxnPool(n int) *txnPool {
	p := &txnPool{clients: make([]*kgo.Client, n)}
	for i := n - 1; i >= 0; i-- {
		p.free = append(p.free, i)
	}
	return p
}

// take reserves a free slot and hands over its producer (nil if none yet).
func (p *txnPool) take() (int, *kgo.Client, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) == 0 {
		return 0, nil, false
	}
	n := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	cl := p.clients[n]
	p.clients[n] = nil
	return n, cl, true
}

// put frees slot n, keeping cl (which may be nil) for its next stream.
func (p *txnPool) put(n int, cl *kgo.Client) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clients[n] = cl
	p.free = append(p.free, n)
}

// poolID is the transactional.id of pool slot n.
func (s *Sink) poolID(n int) string {
	return fmt.Sprintf("%s-%d", s.cfg.poolStem(s.replica), n)
}

// WriterTransactionalID is the transactional.id of a named writer.
func (s *Sink) WriterTransactionalID(writerID string) string {
	return s.cfg.TransactionalIDPrefix + "-w-" + writerID
}

// resetPool re-initialises every pool id at start-up: InitProducerId bumps
// the epoch, which aborts transactions a crashed predecessor left open, so
// read_committed consumers are not held back until their timeout.
func (s *Sink) resetPool(ctx context.Context) error {
	for n := 0; n < s.cfg.MaxExactlyOnceStreams; n++ {
		if err := s.initProducerID(ctx, s.poolID(n)); errors.Is(err, kerr.InvalidTransactionTimeout) {
			return fmt.Errorf("kafka.transaction_timeout: %v is more than the broker allows (transaction.max.timeout.ms): %w", s.cfg.TransactionTimeout, err)
		} else if err != nil {
			return fmt.Errorf("re-initialising transactional id %s: %w", s.poolID(n), err)
		}
	}
	return nil
}

func (s *Sink) initProducerID(ctx context.Context, txnID string) error {
	for {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID = &txnID
		req.TransactionTimeoutMillis = int32(s.cfg.TransactionTimeout.Milliseconds())
		req.ProducerID, req.ProducerEpoch = -1, -1
		resp, err := req.RequestWith(ctx, s.adminc)
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		if err == nil {
			return nil
		}
		// The coordinator answers CONCURRENT_TRANSACTIONS while it aborts
		// the transaction left open; ask again.
		if !kerr.IsRetriable(err) && !errors.Is(err, kerr.ConcurrentTransactions) {
			return err
		}
		select {
		case <-ctx.Done():
			return s.unavailable(ctx, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// OpenExactlyOnce opens a transactional writer for one stream. With a
// writerID, it always initialises a fresh producer (which fences every older
// producer of that writer, on any replica, and settles their open
// transaction) before it reads the writer's progress. Without one, it takes
// a producer from the pool. A server that does not hold its replica claim
// (ClaimReplica) opens none: ErrUnavailable, so the client retries on
// another replica.
func (s *Sink) OpenExactlyOnce(ctx context.Context, topic, writerID string) (*Opened, error) {
	if c := s.claim.Load(); c != nil {
		if err := c.Err(); err != nil {
			return nil, fmt.Errorf("%w: this server takes no exactly-once streams while it does not hold its replica name: %v", ErrUnavailable, err)
		}
	}
	w := &exactlyOnce{sink: s, topic: topic, writerID: writerID, slot: -1,
		inflight: inflight{skip: s.cfg.ProgressTopic, maxBytes: s.cfg.MaxBufferedBytes, timeout: s.cfg.ProduceTimeout, obs: s.obs,
			authFailure: s.creds.failureSince, forget: s.topics.forget}}
	w.inflight.mapErr = w.mapError
	w.promise = w.done
	if writerID == "" {
		var ok bool
		if w.slot, w.cl, ok = s.pool.take(); !ok {
			return nil, fmt.Errorf("%w (flight.max_streams=%d)", ErrPoolExhausted, s.cfg.MaxExactlyOnceStreams)
		}
	}
	id := s.WriterTransactionalID(writerID)
	if writerID == "" {
		id = s.poolID(w.slot)
	}
	w.unlive = s.markLive(id)
	if w.cl == nil {
		cl, err := kgo.NewClient(append(s.producerOpts(),
			kgo.TransactionalID(id),
			kgo.TransactionTimeout(s.cfg.TransactionTimeout),
		)...)
		if err != nil {
			w.release(false)
			return nil, err
		}
		w.cl = cl
	}
	initCtx, cancel := context.WithTimeout(ctx, s.cfg.ProduceTimeout)
	_, _, err := w.cl.ProducerID(initCtx)
	cancel()
	if err != nil {
		w.release(false)
		return nil, s.unavailable(initCtx, fmt.Errorf("initialising the transactional producer: %w", err))
	}
	opened := &Opened{Writer: w}
	if writerID != "" {
		readCtx, cancel := context.WithTimeout(ctx, s.cfg.ProduceTimeout)
		opened.Progress, opened.HasProgress, err = s.progress.Read(readCtx, writerID)
		cancel()
		if err != nil {
			w.release(false)
			return nil, err
		}
	}
	if err := w.cl.BeginTransaction(); err != nil {
		w.release(false)
		return nil, err
	}
	return opened, nil
}

// exactlyOnce is a stream's transactional writer: the stream's records since
// the last checkpoint are the open transaction.
type exactlyOnce struct {
	inflight
	sink     *Sink
	cl       *kgo.Client
	topic    string
	writerID string
	slot     int    // pool slot, -1 for a named writer
	unlive   func() // takes the transactional id off the live list (markLive)
	promise  func(*kgo.Record, error)
	txnStart time.Time // first record of the open transaction
	// lastProgress is a named writer's newest progress record (its
	// partition and offset once acknowledged).
	lastProgress *kgo.Record
}

func (w *exactlyOnce) Produce(ctx context.Context, c sinkapi.Chunk) error {
	recs := c.(*Records)
	return w.ProduceBatch(ctx, recs.records, recs.acked())
}

func (w *exactlyOnce) ProduceBatch(ctx context.Context, recs []kgo.Record, acked func()) error {
	if w.txnStart.IsZero() && len(recs) > 0 {
		w.txnStart = time.Now()
	}
	return w.produceBatch(ctx, recs, w.promise, acked, func(r *kgo.Record, promise func(*kgo.Record, error)) {
		w.cl.Produce(ctx, r, promise)
	})
}

// Checkpoint commits the open transaction: every record acknowledged, the
// writer's progress record added, EndTxn, and a new transaction begun. Any
// failed record of the transaction fails the checkpoint (kgo would commit
// the rest). The caller aborts after an error.
func (w *exactlyOnce) Checkpoint(ctx context.Context, p Progress) error {
	if err := w.commit(ctx, p); err != nil {
		return err
	}
	return w.cl.BeginTransaction()
}

// commit ends the open transaction with a commit (see Checkpoint).
func (w *exactlyOnce) commit(ctx context.Context, p Progress) error {
	if w.writerID != "" {
		p.WriterID, p.Topic, p.CommittedAt = w.writerID, w.topic, time.Now().UTC()
		rec := w.sink.progress.record(p)
		w.add(rec)
		w.cl.Produce(ctx, rec, w.promise)
		w.lastProgress = rec // its partition and offset are set once acknowledged
	}
	if err := w.flush(ctx); err != nil {
		return err
	}
	// Once sent, a commit is not canceled with the stream (its outcome
	// would be unknowable), only bounded by kafka.produce_timeout.
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.sink.cfg.ProduceTimeout)
	defer cancel()
	began := time.Now()
	if err := w.cl.EndTransaction(ectx, kgo.TryCommit); err != nil {
		return w.mapCommitError(err)
	}
	w.sink.obs.TxnCommitted(time.Since(began))
	w.txnStart = time.Time{}
	return nil
}

// flush sends lingering batches now and waits for every record.
func (w *exactlyOnce) flush(ctx context.Context) error {
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go w.cl.Flush(fctx) //nolint:errcheck // only speeds up the wait below, which reports errors
	return w.waitAll(ctx)
}

func (w *exactlyOnce) Close(ctx context.Context, commit bool, p Progress) error {
	if commit {
		err := w.commit(ctx, p)
		if err == nil {
			// Kafka answers a commit before it has written the markers:
			// wait (briefly) until the progress is readable, so the
			// writer's status read right after the stream's done shows it.
			if w.lastProgress != nil {
				w.sink.progress.waitReadable(ctx, w.lastProgress, time.Second)
			}
			w.release(true)
			return nil
		}
		w.abort()
		return err
	}
	w.abort()
	return nil
}

// abort ends the open transaction without committing and gives the
// producer back (to the pool if it is still usable).
func (w *exactlyOnce) abort() {
	if !w.txnStart.IsZero() { // an open transaction with records in it
		w.sink.obs.TxnAborted()
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.sink.cfg.ProduceTimeout)
	defer cancel()
	healthy := w.cl.AbortBufferedRecords(ctx) == nil
	if healthy {
		healthy = w.cl.EndTransaction(ctx, kgo.TryAbort) == nil
	}
	if !healthy {
		w.sink.log.Debug().Str("topic", w.topic).Str("writer_id", w.writerID).Msg("transactional producer dropped after a failed abort")
	}
	w.release(healthy)
}

// release closes a named writer's producer, or returns a pool producer to
// its slot (closed and forgotten unless healthy: a fenced or timed-out
// producer can never be used again).
func (w *exactlyOnce) release(healthy bool) {
	if w.unlive != nil {
		w.unlive()
	}
	if w.slot < 0 {
		if w.cl != nil {
			w.cl.Close()
		}
		return
	}
	if !healthy && w.cl != nil {
		w.cl.Close()
		w.cl = nil
	}
	w.sink.pool.put(w.slot, w.cl)
	w.slot = -2 // released
}

// mapError maps a failed record of the open transaction: fencing and
// broker-side aborts as for a commit, anything else as any produce error.
func (w *exactlyOnce) mapError(err error) error {
	if fencedOrAborted(err) {
		return w.mapCommitError(err)
	}
	return w.sink.mapProduceError(err)
}

// fencedOrAborted reports the errors of a transaction that can never
// commit: its producer was fenced, or the broker aborted it.
func fencedOrAborted(err error) bool {
	return isFencedErr(err) || errors.Is(err, kerr.TransactionAbortable) || errors.Is(err, kerr.InvalidTxnState)
}

// mapCommitError tells fencing, a broker-side abort (transaction timeout)
// and an unknown commit outcome apart.
func (w *exactlyOnce) mapCommitError(err error) error {
	timedOut := !w.txnStart.IsZero() && time.Since(w.txnStart) >= w.sink.cfg.TransactionTimeout
	switch {
	case fencedOrAborted(err):
		if timedOut {
			return fmt.Errorf("%w: the transaction ran longer than kafka.transaction_timeout (%v) without a checkpoint, so the broker aborted it; checkpoint more often: %v",
				ErrTxnAborted, w.sink.cfg.TransactionTimeout, err)
		}
		if w.writerID != "" {
			return fmt.Errorf("%w: writer %s was opened by a newer stream or reset (%v)", ErrFenced, w.writerID, err)
		}
		return fmt.Errorf("%w: the transactional producer was fenced (%v)", ErrFenced, err)
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.UnknownTopicOrPartition):
		return mapProduceError(err)
	case errors.Is(err, context.Canceled):
		return err
	}
	if ae := w.sink.creds.refusal(err); ae != nil {
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, ae)
	}
	return fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)
}
