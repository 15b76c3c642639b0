package sinkapi

import (
	"errors"
	"time"
)

// ErrTxnNotAbortable means transaction-abort refused a transaction: it is
// not lingering (open no longer than the lingering threshold, used by a
// live stream on some replica, or no longer open), or its transactional id
// is not one a stream of this server uses. The message says which.
var ErrTxnNotAbortable = errors.New("transaction not abortable")

// The kinds of the server's transactional ids (Transaction.Kind).
const (
	TxnKindWriter  = "writer"  // <prefix>-w-<writer id>: a named writer's streams
	TxnKindPool    = "pool"    // <prefix>-p-<replica>-<n>: anonymous exactly-once streams
	TxnKindReplica = "replica" // <prefix>-r-<replica>: a replica claim's heartbeats
)

// Transaction is an open transaction of one of the server's transactional
// ids, as its transaction coordinator describes it.
type Transaction struct {
	TransactionalID string
	// Kind is TxnKindWriter, TxnKindPool or TxnKindReplica.
	Kind string
	// WriterID is a writer transaction's writer id, as the progress topic
	// keys it (principal-scoped when auth is on).
	WriterID string
	// Replica is the replica name of a pool or claim id.
	Replica string
	// State is the coordinator's: Ongoing, PrepareCommit, PrepareAbort,
	// PrepareEpochFence (CompleteAbort after an abort).
	State         string
	ProducerID    int64
	ProducerEpoch int16
	// Started is when its first partition joined, by the coordinator's clock.
	Started time.Time
	// Timeout is the transaction's own timeout, after which the broker
	// aborts it by itself.
	Timeout time.Duration
	// Partitions are the partitions it wrote to, by topic.
	Partitions map[string][]int32
	// Lingering is true when it has been open longer than LingerAfter (by
	// the coordinator's clock) and no replica's heartbeat says a live stream
	// uses its id: transaction-abort may end it.
	Lingering bool
	// LiveOn names the replica whose last heartbeat lists the id in use
	// (this server's own streams included); empty when none does.
	LiveOn string
}
