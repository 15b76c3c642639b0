package kafka

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The admin side of named writers: every writer's progress, a writer's
// status that reads its own last commit, and a reset that fences the
// writer before it forgets its progress.

// markLive notes that a stream of this server uses txnID until done is
// called; heartbeats of the replica claim carry these ids, so another
// replica can tell a live stream's transaction from a lingering one.
func (s *Sink) markLive(txnID string) (done func()) {
	s.liveMu.Lock()
	if s.live == nil {
		s.live = map[string]int{}
	}
	s.live[txnID]++
	s.liveMu.Unlock()
	released := false
	return func() {
		s.liveMu.Lock()
		defer s.liveMu.Unlock()
		if released {
			return
		}
		released = true
		if s.live[txnID]--; s.live[txnID] <= 0 {
			delete(s.live, txnID)
		}
	}
}

// liveIDs lists the transactional ids of this server's open exactly-once
// streams, sorted.
func (s *Sink) liveIDs() []string {
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	ids := make([]string, 0, len(s.live))
	for id := range s.live {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (s *Sink) isLive(txnID string) bool {
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	return s.live[txnID] > 0
}

// WriterStatus reads a named writer's committed progress without opening a
// stream (and without fencing it). It reads the writer's own last commit
// even right after it: Kafka answers a commit before the markers are
// written, so it first waits while the writer's transactional id is
// completing a transaction (the coordinator's PrepareCommit/PrepareAbort),
// then reads up to the last stable offset, which is then past the commit.
func (s *Sink) WriterStatus(ctx context.Context, writerID string) (Progress, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProduceTimeout)
	defer cancel()
	s.awaitSettled(ctx, s.WriterTransactionalID(writerID))
	return s.progress.Read(ctx, writerID)
}

// awaitSettled waits until the coordinator of txnID is not completing a
// transaction: its markers are then written on every partition. Errors
// (an id never used, no Describe permission) end the wait: the read that
// follows is then as good as it can be.
func (s *Sink) awaitSettled(ctx context.Context, txnID string) {
	for {
		d, err := s.admin.DescribeTransactions(ctx, txnID)
		if err != nil {
			return
		}
		t, ok := d[txnID]
		if !ok || t.Err != nil {
			return
		}
		switch t.State {
		case "PrepareCommit", "PrepareAbort", "PrepareEpochFence":
		default:
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Writers returns the committed progress of every named writer, sorted by
// writer id (as the progress topic keys them: principal-scoped when auth
// is on).
func (s *Sink) Writers(ctx context.Context) ([]Progress, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*s.cfg.ProduceTimeout)
	defer cancel()
	var all []Progress
	for n := 0; n < s.progress.nPart; n++ {
		prs, err := s.progress.readPartition(ctx, int32(n))
		if err != nil {
			return nil, err
		}
		all = append(all, prs...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].WriterID < all[j].WriterID })
	return all, nil
}

// ResetWriter forgets a named writer's progress, so its next stream starts
// from checkpoint 1 and 0 committed rows. It first initialises the
// writer's transactional id, which fences every stream of the writer on any
// replica (their next produce or commit fails with ErrFenced; nothing they
// send afterwards becomes visible), then writes a tombstone for the writer
// in a transaction of that same id: a stream that opens during the reset
// fences the reset instead, which then fails with ErrFenced and forgets
// nothing. It returns the progress it forgot; found is false when there was
// none (the writer is fenced all the same).
func (s *Sink) ResetWriter(ctx context.Context, writerID string) (Progress, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*s.cfg.ProduceTimeout)
	defer cancel()
	txnID := s.WriterTransactionalID(writerID)
	cl, err := kgo.NewClient(append(s.producerOpts(), kgo.TransactionalID(txnID), kgo.TransactionTimeout(s.cfg.TransactionTimeout))...)
	if err != nil {
		return Progress{}, false, err
	}
	defer cl.Close()
	if _, _, err := cl.ProducerID(ctx); err != nil {
		return Progress{}, false, s.unavailable(ctx, fmt.Errorf("fencing writer %s (transactional id %s): %w", writerID, txnID, err))
	}
	prev, found, err := s.progress.Read(ctx, writerID)
	if err != nil || !found {
		return prev, found, err
	}
	if err := cl.BeginTransaction(); err != nil {
		return prev, found, err
	}
	tomb := &kgo.Record{Topic: s.cfg.ProgressTopic, Key: []byte(writerID), Partition: -1}
	if err := cl.ProduceSync(ctx, tomb).FirstErr(); err != nil {
		_ = cl.EndTransaction(context.WithoutCancel(ctx), kgo.TryAbort)
		return prev, found, s.resetFailed(ctx, writerID, err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return prev, found, s.resetFailed(ctx, writerID, err)
	}
	s.awaitSettled(ctx, txnID)
	s.log.Info().Str("writer_id", writerID).Str("topic", prev.Topic).Int64("checkpoint", prev.Checkpoint).
		Int64("committed_rows", prev.CommittedRows).Msg("writer reset: fenced, progress forgotten")
	return prev, found, nil
}

func (s *Sink) resetFailed(ctx context.Context, writerID string, err error) error {
	if fencedOrAborted(err) {
		return fmt.Errorf("%w: a stream of writer %s opened during the reset and fenced it; nothing was reset (%v)", ErrFenced, writerID, err)
	}
	return s.unavailable(ctx, fmt.Errorf("resetting writer %s: %w", writerID, err))
}
