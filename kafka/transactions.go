package kafka

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/flightsink/flightsink/kafka/sinkapi"
)

// Transactions of the server's own transactional ids (<prefix>-w-*,
// <prefix>-p-*, <prefix>-r-*): listing them, and aborting a lingering one.
//
// A transaction lingers when it has been open longer than LingerAfter (by
// the coordinator's clock: ListTransactions' duration filter) and no live
// stream uses its id. Every replica's claim heartbeats (every
// kafka.replica_claim_ttl/3) list the ids its open streams use. A stream
// whose transaction is older than LingerAfter ≥ kafka.replica_claim_ttl has
// been open across a heartbeat, unless its server wrote none for a whole
// TTL, which is when the claim rules let another server take that server's
// name (and pool) over. So a transaction no heartbeat lists is not a live
// stream's.
//
// The abort is the transaction's own EndTxn(abort), sent with the producer
// id and epoch the coordinator described: the coordinator checks both, so it
// ends exactly that transaction and writes its abort markers as the
// producer's own abort would. A stream that initialised the id since holds
// a newer epoch and is not touched (the coordinator answers
// PRODUCER_FENCED). A fencing InitProducerId could not tell the two apart
// (while a transaction is open the coordinator checks only the producer id),
// and WriteTxnMarkers (kafka-transactions.sh abort) writes markers behind
// the coordinator's back, for hanging transactions the coordinator no
// longer knows, and needs ClusterAction.

// openStates are the coordinator states of a transaction not yet complete.
var openStates = []string{"Ongoing", "PrepareCommit", "PrepareAbort", "PrepareEpochFence"}

// LingerAfter is how long a transaction must have been open before
// transaction-abort may end it: kafka.transaction_timeout, and at least
// kafka.replica_claim_ttl (see above).
func (s *Sink) LingerAfter() time.Duration {
	return max(s.cfg.TransactionTimeout, s.cfg.ReplicaClaimTTL)
}

// txnKind parses one of the server's transactional ids.
func (s *Sink) txnKind(id string) (kind, writer, replica string, ok bool) {
	rest, found := strings.CutPrefix(id, s.cfg.TransactionalIDPrefix+"-")
	if !found {
		return "", "", "", false
	}
	switch {
	case strings.HasPrefix(rest, "w-"):
		return sinkapi.TxnKindWriter, rest[2:], "", true
	case strings.HasPrefix(rest, "r-"):
		return sinkapi.TxnKindReplica, "", rest[2:], true
	case strings.HasPrefix(rest, "p-"):
		if i := strings.LastIndexByte(rest, '-'); i > 2 {
			return sinkapi.TxnKindPool, "", rest[2:i], true
		}
	}
	return "", "", "", false
}

// Transactions lists the open transactions of the server's transactional
// ids, oldest first, each marked lingering or live as the replicas'
// latest heartbeats say.
func (s *Sink) Transactions(ctx context.Context) ([]sinkapi.Transaction, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*s.cfg.ProduceTimeout)
	defer cancel()
	// ".*": the brokers match the whole id (Java's matches()), not a prefix
	pattern := "^" + regexp.QuoteMeta(s.cfg.TransactionalIDPrefix+"-") + ".*"
	listed, err := s.admin.ListTransactionsByTxPattern(ctx, nil, openStates, pattern)
	if err != nil {
		return nil, s.unavailable(ctx, fmt.Errorf("listing transactions: %w", err))
	}
	var ids []string
	for id := range listed {
		if _, _, _, ok := s.txnKind(id); ok {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	old, err := s.openLongerThan(ctx, s.LingerAfter(), pattern, nil)
	if err != nil {
		return nil, err
	}
	described, err := s.admin.DescribeTransactions(ctx, ids...)
	if err != nil {
		return nil, s.unavailable(ctx, fmt.Errorf("describing transactions: %w", err))
	}
	beats, _, err := s.heartbeats(ctx)
	if err != nil {
		return nil, err
	}
	beats.close()
	var out []sinkapi.Transaction
	for _, d := range described {
		if d.Err != nil || !isOpen(d.State) {
			continue // ended since it was listed
		}
		t := s.transaction(d)
		t.LiveOn = s.liveOn(beats, t.TransactionalID)
		t.Lingering = d.State == "Ongoing" && old[t.TransactionalID] && t.LiveOn == "" && t.Kind != sinkapi.TxnKindReplica
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Started.Equal(out[j].Started) {
			return out[i].Started.Before(out[j].Started)
		}
		return out[i].TransactionalID < out[j].TransactionalID
	})
	return out, nil
}

func isOpen(state string) bool {
	for _, st := range openStates {
		if st == state {
			return true
		}
	}
	return false
}

func (s *Sink) transaction(d kadm.DescribedTransaction) sinkapi.Transaction {
	kind, writer, replica, _ := s.txnKind(d.TxnID)
	t := sinkapi.Transaction{TransactionalID: d.TxnID, Kind: kind, WriterID: writer, Replica: replica, State: d.State,
		ProducerID: d.ProducerID, ProducerEpoch: d.ProducerEpoch, Timeout: time.Duration(d.TimeoutMillis) * time.Millisecond,
		Partitions: map[string][]int32{}}
	if d.StartTimestamp > 0 {
		t.Started = time.UnixMilli(d.StartTimestamp).UTC()
	}
	for topic, parts := range d.Topics {
		for p := range parts {
			t.Partitions[topic] = append(t.Partitions[topic], p)
		}
		sort.Slice(t.Partitions[topic], func(i, j int) bool { return t.Partitions[topic][i] < t.Partitions[topic][j] })
	}
	return t
}

// openLongerThan returns the ids (matching pattern, of producerIDs if any)
// whose transaction has been Ongoing longer than d, by each coordinator's
// own clock.
func (s *Sink) openLongerThan(ctx context.Context, d time.Duration, pattern string, producerIDs []int64) (map[string]bool, error) {
	req := kmsg.NewPtrListTransactionsRequest()
	req.StateFilters = []string{"Ongoing"}
	req.ProducerIDFilters = producerIDs
	req.DurationFilterMillis = d.Milliseconds()
	req.TransactionalIDPattern = &pattern
	out := map[string]bool{}
	for _, shard := range s.adminc.RequestSharded(ctx, req) {
		err := shard.Err
		if err == nil {
			resp := shard.Resp.(*kmsg.ListTransactionsResponse)
			if err = kerr.ErrorForCode(resp.ErrorCode); err == nil {
				for _, t := range resp.TransactionStates {
					out[t.TransactionalID] = true
				}
			}
		}
		if err != nil {
			return nil, s.unavailable(ctx, fmt.Errorf("listing transactions open longer than %v: %w", d, err))
		}
	}
	return out, nil
}

// heartbeats replays the replica topic up to its end: every holder's
// latest record, and the end offset. Without the topic (a server that
// never claimed a name) nobody heartbeats.
func (s *Sink) heartbeats(ctx context.Context) (*claimLog, int64, error) {
	if _, err := s.describe(ctx, s.cfg.ReplicaTopic); errors.Is(err, ErrTopicMissing) {
		return &claimLog{state: claimState{}}, 0, nil
	} else if err != nil {
		return nil, 0, err
	}
	l, err := s.openClaimLog()
	if err != nil {
		return nil, 0, err
	}
	end, err := l.end(ctx)
	if err == nil {
		err = l.catchUp(ctx, end)
	}
	if err != nil {
		l.close()
		return nil, 0, err
	}
	return l, end, nil
}

// liveOn names the replica using txnID: this server when one of its
// streams does, else a holder whose latest heartbeat lists it.
func (s *Sink) liveOn(l *claimLog, txnID string) string {
	if s.isLive(txnID) {
		return s.replica
	}
	for _, h := range l.state {
		if h.rec.Kind == claimKindBeat && h.rec.lists(txnID) {
			return h.rec.Replica
		}
	}
	return ""
}

// AbortTransaction aborts a lingering transaction of one of the server's
// transactional ids (see the top of this file for what lingering means and
// why the abort is EndTxn). It refuses, with ErrTxnNotAbortable saying why,
// an id of another prefix or a replica claim's, a transaction that is not
// open or not open long enough, and one a live stream uses. When a replica
// whose last heartbeat listed the id has not written since, it watches the
// replica topic for up to that replica's kafka.replica_claim_ttl: a new
// heartbeat that lists the id refuses, silence for the TTL means the
// replica is gone. It returns the transaction as it was before the abort.
func (s *Sink) AbortTransaction(ctx context.Context, txnID string) (sinkapi.Transaction, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*s.cfg.ProduceTimeout+2*s.cfg.ReplicaClaimTTL)
	defer cancel()
	kind, _, replica, ok := s.txnKind(txnID)
	switch {
	case !ok:
		return sinkapi.Transaction{}, fmt.Errorf("%w: %q is not a transactional id of this server's streams (kafka.transactional_id_prefix %q: <prefix>-w-<writer>, <prefix>-p-<replica>-<n>)",
			sinkapi.ErrTxnNotAbortable, txnID, s.cfg.TransactionalIDPrefix)
	case kind == sinkapi.TxnKindReplica:
		return sinkapi.Transaction{}, fmt.Errorf("%w: %s is the heartbeat producer of replica %q's claim; the broker aborts its transactions after kafka.replica_claim_ttl",
			sinkapi.ErrTxnNotAbortable, txnID, replica)
	}
	described, err := s.admin.DescribeTransactions(ctx, txnID)
	if err != nil {
		return sinkapi.Transaction{}, s.unavailable(ctx, fmt.Errorf("describing transaction %s: %w", txnID, err))
	}
	d := described[txnID]
	if errors.Is(d.Err, kerr.TransactionalIDNotFound) || d.TxnID == "" {
		return sinkapi.Transaction{}, fmt.Errorf("%w: transactional id %s has no transaction", sinkapi.ErrTxnNotAbortable, txnID)
	} else if d.Err != nil {
		return sinkapi.Transaction{}, s.unavailable(ctx, fmt.Errorf("describing transaction %s: %w", txnID, d.Err))
	}
	t := s.transaction(d)
	if d.State != "Ongoing" {
		return t, fmt.Errorf("%w: the transaction of %s is not open (state %s)", sinkapi.ErrTxnNotAbortable, txnID, d.State)
	}
	old, err := s.openLongerThan(ctx, s.LingerAfter(), "^"+regexp.QuoteMeta(txnID)+"$", []int64{d.ProducerID})
	if err != nil {
		return t, err
	}
	if !old[txnID] {
		return t, fmt.Errorf("%w: the transaction of %s started at %s, not more than %v ago (kafka.transaction_timeout, at least kafka.replica_claim_ttl): "+
			"it may be a live stream's; the broker aborts it after its own timeout (%v)",
			sinkapi.ErrTxnNotAbortable, txnID, t.Started.Format(time.RFC3339), s.LingerAfter(), t.Timeout)
	}
	if s.isLive(txnID) {
		return t, fmt.Errorf("%w: %s is in use by a live stream on this replica (%q)", sinkapi.ErrTxnNotAbortable, txnID, s.replica)
	}
	if on, err := s.liveElsewhere(ctx, txnID); err != nil {
		return t, err
	} else if on != "" {
		return t, fmt.Errorf("%w: %s is in use by a live stream on replica %q (its latest heartbeat lists it)", sinkapi.ErrTxnNotAbortable, txnID, on)
	}
	if err := s.endTxnAbort(ctx, txnID, d.ProducerID, d.ProducerEpoch); err != nil {
		return t, err
	}
	s.awaitSettled(ctx, txnID)
	s.log.Info().Str("transactional_id", txnID).Int64("producer_id", d.ProducerID).Int16("producer_epoch", d.ProducerEpoch).
		Time("started", t.Started).Msg("aborted a lingering transaction (EndTxn abort)")
	return t, nil
}

// liveElsewhere watches the replica topic for the replicas whose latest
// heartbeat lists txnID (this server's own aside): a new heartbeat that
// still lists it names a live replica; one that does not, a release, or
// silence for the holder's TTL clears it.
func (s *Sink) liveElsewhere(ctx context.Context, txnID string) (string, error) {
	l, hwm0, err := s.heartbeats(ctx)
	if err != nil {
		return "", err
	}
	defer l.close()
	own := ""
	if c := s.claim.Load(); c != nil {
		own = c.key
	}
	suspects := map[string]bool{}
	wait := s.cfg.ReplicaClaimTTL
	for key, h := range l.state {
		if key != own && h.rec.Kind == claimKindBeat && h.rec.lists(txnID) {
			suspects[key] = true
			wait = max(wait, h.rec.ttl())
		}
	}
	deadline := time.Now().Add(wait)
	for len(suspects) > 0 && time.Now().Before(deadline) {
		if err := l.pollUntil(ctx, deadline); err != nil {
			return "", s.unavailable(ctx, fmt.Errorf("kafka.replica_topic: watching for heartbeats: %w", err))
		}
		for key := range suspects {
			h := l.state[key]
			switch {
			case h == nil:
				delete(suspects, key) // released
			case h.offset >= hwm0 && h.rec.Kind == claimKindBeat && h.rec.lists(txnID):
				return h.rec.Replica, nil
			case h.offset >= hwm0:
				delete(suspects, key)
			}
		}
	}
	return "", nil
}

// endTxnAbort sends EndTxn(abort) as producer id/epoch, retrying while
// the coordinator is busy. A newer epoch means the transaction already
// ended and someone else holds the id: refused, nothing touched.
func (s *Sink) endTxnAbort(ctx context.Context, txnID string, pid int64, epoch int16) error {
	for {
		req := kmsg.NewPtrEndTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = txnID, pid, epoch, false
		resp, err := req.RequestWith(ctx, s.adminc)
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		switch {
		case err == nil:
			return nil
		case isFencedErr(err), errors.Is(err, kerr.InvalidTxnState):
			return fmt.Errorf("%w: the transaction of %s ended meanwhile and a newer producer holds the id; it was left untouched (%v)",
				sinkapi.ErrTxnNotAbortable, txnID, err)
		case !kerr.IsRetriable(err) && !errors.Is(err, kerr.ConcurrentTransactions):
			return fmt.Errorf("aborting the transaction of %s: %w", txnID, err)
		}
		select {
		case <-ctx.Done():
			return s.unavailable(ctx, fmt.Errorf("aborting the transaction of %s: %w", txnID, err))
		case <-time.After(50 * time.Millisecond):
		}
	}
}
