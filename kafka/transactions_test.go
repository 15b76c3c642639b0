package kafka

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flightsink/flightsink/internal/kafkatest"
	"github.com/flightsink/flightsink/kafka/sinkapi"
)

// TestAbortCannotFenceANewerProducer: the race transaction-abort must
// survive. The abort was decided for a dead producer's transaction (its
// producer id and epoch described), but before it is sent a new stream
// initialises the same transactional id (which aborts the dead one's
// transaction itself) and begins writing. The abort, EndTxn as the described
// id and epoch, is refused with ErrTxnNotAbortable, and the new stream
// commits: read_committed sees its record, and none of the dead one's.
func TestAbortCannotFenceANewerProducer(t *testing.T) {
	e := newClaimEnv(t)
	s := e.sink("abort", 0, 2*time.Second)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, e.brokers, topic, 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	txnID := s.WriterTransactionalID("raced")

	dead := kafkatest.Client(t, e.brokers, kgo.TransactionalID(txnID), kgo.TransactionTimeout(10*time.Minute), kgo.DefaultProduceTopic(topic))
	if err := dead.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := dead.ProduceSync(ctx, &kgo.Record{Value: []byte("dead")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	described, err := s.admin.DescribeTransactions(ctx, txnID)
	if err != nil {
		t.Fatal(err)
	}
	d := described[txnID]
	if d.State != "Ongoing" {
		t.Fatalf("the dead producer's transaction: %+v", d)
	}

	newer := kafkatest.Client(t, e.brokers, kgo.TransactionalID(txnID), kgo.DefaultProduceTopic(topic))
	if err := newer.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := newer.ProduceSync(ctx, &kgo.Record{Value: []byte("newer")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	err = s.endTxnAbort(ctx, txnID, d.ProducerID, d.ProducerEpoch)
	if !errors.Is(err, sinkapi.ErrTxnNotAbortable) {
		t.Fatalf("EndTxn as the dead producer after a newer one took the id: %v; want ErrTxnNotAbortable", err)
	}
	t.Logf("refused: %v", err)
	if err := newer.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("the newer producer could not commit: %v", err)
	}
	recs := kafkatest.ReadCommitted(t, e.brokers, topic)
	if len(recs) != 1 || string(recs[0].Value) != "newer" {
		t.Fatalf("read_committed: %d records (%v); want the newer producer's one", len(recs), recs)
	}
}
