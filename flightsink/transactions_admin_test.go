package flightsink_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc/codes"

	"github.com/flightsink/flightsink/flightsink"
	"github.com/flightsink/flightsink/internal/kafkatest"
)

// TestTransactionsLingeringAbort: a producer with the server's prefix (a
// named writer's id) begins a transaction, produces and dies without ending
// it, with a transaction timeout of 10 minutes: read_committed consumers of
// its partition are stuck. transactions-list shows it as lingering once it
// has been open longer than kafka.transaction_timeout, transaction-abort on
// either replica ends it, and then the last stable offset reaches the high
// watermark. A live stream's transaction on replica a (whose
// kafka.transaction_timeout is longer, so the broker leaves it open) is as
// old, but replica b refuses to abort it because a's heartbeats list it;
// the stream then commits as if nothing happened.
func TestTransactionsLingeringAbort(t *testing.T) {
	kcfg := replicaConfig(t)
	a := startReplica(t, "a", nil, kcfg)
	kcfg.TransactionTimeout = 2 * time.Second
	b := startReplica(t, "b", nil, kcfg)
	if !kafkatest.IsReal(a.kind) {
		t.Skip("transaction states and abort markers are a real-Kafka behaviour")
	}
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, a.brokers, topic, 1, nil)
	rec := simpleBatch(0, 5, -1, 0)
	defer rec.Release()

	// A live stream on replica a, with an open transaction.
	ls, _, err := a.open(t, eosDesc(topic, "writer_id", "live"), simpleSchema)
	if err != nil {
		t.Fatal(err)
	}
	ls.send(rec, "")
	liveID := kcfg.TransactionalIDPrefix + "-w-live"

	// The dead producer: begins, produces, and is gone without ending.
	ghostID := kcfg.TransactionalIDPrefix + "-w-ghost"
	ghost, err := kgo.NewClient(kgo.SeedBrokers(a.brokers...), kgo.TransactionalID(ghostID), kgo.TransactionTimeout(10*time.Minute), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := ghost.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := ghost.ProduceSync(ctx, &kgo.Record{Value: []byte(`{"id":1000}`)}, &kgo.Record{Value: []byte(`{"id":1001}`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	ghost.Close() // no EndTransaction: the coordinator keeps it open for 10 minutes

	var listed map[string]map[string]any
	waitFor(t, "the dead producer's transaction to linger", func() bool {
		listed = transactionsByID(t, b.action(t, flightsink.ActionTransactionsList, nil).ok(t, "transactions-list"))
		return listed[ghostID]["lingering"] == true
	})
	g, l := listed[ghostID], listed[liveID]
	if g["state"] != "Ongoing" || g["kind"] != "writer" || g["writer_id"] != "ghost" || g["live_on"] != nil || g["timeout_ms"] != 600000.0 {
		t.Errorf("the dead producer's transaction: %v", g)
	}
	if parts, _ := g["partitions"].(map[string]any); len(parts[topic].([]any)) != 1 {
		t.Errorf("the dead producer's partitions: %v; want %s partition 0", g["partitions"], topic)
	}
	if l == nil || l["lingering"] != false || l["live_on"] != "a" {
		t.Errorf("the live stream's transaction: %v; want live on a, not lingering", l)
	}
	if kafkatest.LastStableEqualsHighWatermark(t, a.brokers, topic) {
		t.Fatal("the last stable offset reached the high watermark before the abort")
	}

	// The live stream's transaction, as old, is refused on b and on a.
	began := time.Now()
	b.action(t, flightsink.ActionTransactionAbort, map[string]any{"transactional_id": liveID}).
		refused(t, "aborting the live stream's transaction on b", codes.FailedPrecondition, flightsink.ReasonTxnNotAbortable, liveID, `live stream on replica "a"`)
	t.Logf("refusing the live stream's transaction took %v (watching for a's next heartbeat)", time.Since(began))
	a.action(t, flightsink.ActionTransactionAbort, map[string]any{"transactional_id": liveID}).
		refused(t, "aborting the live stream's transaction on a", codes.FailedPrecondition, flightsink.ReasonTxnNotAbortable, liveID)
	b.action(t, flightsink.ActionTransactionAbort, map[string]any{"transactional_id": "someone-else"}).
		refused(t, "aborting another prefix's transaction", codes.FailedPrecondition, flightsink.ReasonTxnNotAbortable, "not a transactional id of this server")
	b.action(t, flightsink.ActionTransactionAbort, map[string]any{}).
		refused(t, "an abort without an id", codes.InvalidArgument, flightsink.ReasonBadRequest, "transactional_id")

	// The lingering one is aborted; read_committed consumers move on.
	began = time.Now()
	ab := b.action(t, flightsink.ActionTransactionAbort, map[string]any{"transactional_id": ghostID}).ok(t, "aborting the lingering transaction")
	t.Logf("aborting the lingering transaction took %v (markers written)", time.Since(began))
	if ab["aborted"] != true || ab["transactional_id"] != ghostID {
		t.Fatalf("transaction-abort: %v", ab)
	}
	b.action(t, flightsink.ActionTransactionAbort, map[string]any{"transactional_id": ghostID}).
		refused(t, "aborting it again", codes.FailedPrecondition, flightsink.ReasonTxnNotAbortable, "not open")

	// The live stream was not touched: it commits, and read_committed sees
	// exactly its rows, and the LSO reaches the high watermark.
	ack, err := ls.checkpoint(rec, 1)
	mustAck(t, ack, err, map[string]any{"checkpoint": 1.0, "rows": 10.0})
	wantOK(t, ls.finish())
	waitFor(t, "the last stable offset to reach the high watermark", func() bool {
		return kafkatest.LastStableEqualsHighWatermark(t, a.brokers, topic)
	})
	recs := kafkatest.ReadCommitted(t, a.brokers, topic)
	if len(recs) != 10 {
		t.Fatalf("%d committed records, want the live stream's 10", len(recs))
	}
	for _, id := range ids(t, recs) {
		if id >= 1000 {
			t.Fatalf("the aborted transaction's id %d is visible", id)
		}
	}
	if l := transactionsByID(t, b.action(t, flightsink.ActionTransactionsList, nil).ok(t, "transactions-list")); l[ghostID] != nil || l[liveID] != nil {
		t.Fatalf("transactions-list after the abort and the commit: %v", l)
	}
}

func transactionsByID(t *testing.T, body map[string]any) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	list, ok := body["transactions"].([]any)
	if !ok {
		t.Fatalf("transactions-list: %v", body)
	}
	for _, x := range list {
		m := x.(map[string]any)
		out[m["transactional_id"].(string)] = m
	}
	return out
}
