package flightsink_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc/codes"

	"github.com/flightsink/flightsink/flightsink"
	"github.com/flightsink/flightsink/internal/kafkatest"
	"github.com/flightsink/flightsink/kafka"
)

func eosDesc(topic string, extra ...any) *flight.FlightDescriptor {
	m := map[string]any{"topic": topic, "delivery": "exactly_once"}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i].(string)] = extra[i+1]
	}
	return cmdDesc(m)
}

// ids lists the "id" of every record, in topic order.
func ids(t *testing.T, recs []*kgo.Record) []int64 {
	t.Helper()
	out := make([]int64, 0, len(recs))
	for _, r := range recs {
		var v struct{ ID int64 }
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatalf("record value %q: %v", r.Value, err)
		}
		out = append(out, v.ID)
	}
	return out
}

// wantIDs checks that the records hold exactly ids [0, n), each once, in order.
func wantIDs(t *testing.T, what string, recs []*kgo.Record, n int) {
	t.Helper()
	got := ids(t, recs)
	if len(got) != n {
		t.Fatalf("%s: %d records, want %d (ids %v)", what, len(got), n, summarize(got))
	}
	for i, id := range got {
		if id != int64(i) {
			t.Fatalf("%s: record %d has id %d, want %d (ids %v)", what, i, id, i, summarize(got))
		}
	}
}

func summarize(ids []int64) string {
	if len(ids) <= 20 {
		return fmt.Sprint(ids)
	}
	return fmt.Sprintf("%v ... %v", ids[:10], ids[len(ids)-10:])
}

func mustAck(t *testing.T, ack map[string]any, err error, want map[string]any) {
	t.Helper()
	if err != nil {
		t.Fatalf("waiting for %v: %v", want, err)
	}
	for k, v := range want {
		if ack[k] != v {
			t.Fatalf("ack %v: %s is %v, want %v", ack, k, ack[k], v)
		}
	}
}

// TestExactlyOnceCancelAbortsOpenTransaction: checkpoints 1..3 commit, then
// the client cancels in the middle of checkpoint 4: read_committed shows
// exactly the rows of 1..3, read_uncommitted shows the aborted rows exist.
func TestExactlyOnceCancelAbortsOpenTransaction(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	ls, ready, err := env.open(t, eosDesc(topic), simpleSchema)
	mustAck(t, ready, err, map[string]any{"type": "ready", "delivery": "exactly_once"})
	for c := 1; c <= 3; c++ {
		rec := simpleBatch((c-1)*10, 10, -1, 0)
		ack, err := ls.checkpoint(rec, c)
		rec.Release()
		mustAck(t, ack, err, map[string]any{"type": "checkpoint", "checkpoint": float64(c), "rows": 10.0, "total_rows": float64(c * 10)})
	}
	rec := simpleBatch(30, 10, -1, 0)
	defer rec.Release()
	ls.send(rec, "")
	ls.send(rec, "")
	waitFor(t, "the open transaction's rows to reach the log", func() bool {
		return len(kafkatest.ReadUncommitted(t, env.brokers, topic)) >= 40
	})
	ls.cancel()
	waitFor(t, "the stream to end", func() bool { return env.srv.ActiveStreams() == 0 })

	wantIDs(t, "read_committed", kafkatest.ReadCommitted(t, env.brokers, topic), 30)
	if n := len(kafkatest.ReadUncommitted(t, env.brokers, topic)); n < 40 {
		t.Fatalf("read_uncommitted shows %d records; the aborted ones should be in the log", n)
	}
}

// TestExactlyOnceAbortMarker: {"abort": ...} aborts the open transaction;
// what was checkpointed stays, and a checkpoint sent as metadata alone
// (pyarrow's write_metadata) commits.
func TestExactlyOnceAbortMarker(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	ls, _, err := env.open(t, eosDesc(topic), simpleSchema)
	if err != nil {
		t.Fatal(err)
	}
	first := simpleBatch(0, 7, -1, 0)
	defer first.Release()
	ls.send(first, "")
	ls.meta(checkpoint(1))
	ack, err := ls.ack()
	mustAck(t, ack, err, map[string]any{"type": "checkpoint", "checkpoint": 1.0, "rows": 7.0})
	second := simpleBatch(7, 5, -1, 0)
	defer second.Release()
	ls.send(second, "")
	ls.meta(`{"abort":"upstream failed"}`)
	res := ls.finish()
	wantStatus(t, res, codes.Aborted, string(flightsink.ReasonClientAbort), "upstream failed", "durable_checkpoint=1 durable_rows=7")
	wantIDs(t, "read_committed", kafkatest.ReadCommitted(t, env.brokers, topic), 7)
}

// TestExactlyOnceCommitOnCloseFalse: a clean close with commit_on_close
// false aborts the tail after the last checkpoint and reports it.
func TestExactlyOnceCommitOnCloseFalse(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	first := simpleBatch(0, 4, -1, 0)
	defer first.Release()
	tail := simpleBatch(4, 6, -1, 0)
	defer tail.Release()
	res := env.put(t, eosDesc(topic, "commit_on_close", false), simpleSchema, batchMeta(first, checkpoint(1)), batch(tail))
	wantOK(t, res)
	wantAck(t, res.acks[len(res.acks)-1], map[string]any{"type": "done", "total_rows": 4.0, "last_checkpoint": 1.0, "discarded_rows": 6.0})
	wantIDs(t, "read_committed", kafkatest.ReadCommitted(t, env.brokers, topic), 4)

	// By default the clean close commits the tail.
	topic2 := kafkatest.TopicName(t) + "-b"
	kafkatest.CreateTopic(t, env.brokers, topic2, 1, nil)
	res = env.put(t, eosDesc(topic2), simpleSchema, batchMeta(first, checkpoint(1)), batch(tail))
	wantOK(t, res)
	wantAck(t, res.acks[len(res.acks)-1], map[string]any{"type": "done", "total_rows": 10.0, "last_checkpoint": 1.0, "discarded_rows": 0.0})
	wantIDs(t, "read_committed", kafkatest.ReadCommitted(t, env.brokers, topic2), 10)
}

// TestNamedWriterResume: a named writer's progress is committed with its
// rows; a reopen reports it in ready, the tail committed at a clean close
// counts as the next checkpoint, stale and skipped checkpoints are refused
// with nothing written, and so is a reopen on another topic.
func TestNamedWriterResume(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 2, nil)
	writer := "w-" + topic
	desc := eosDesc(topic, "writer_id", writer)

	ls, ready, err := env.open(t, desc, simpleSchema)
	mustAck(t, ready, err, map[string]any{"type": "ready", "writer_id": writer, "last_checkpoint": nil, "committed_rows": 0.0})
	for c := 1; c <= 2; c++ {
		rec := simpleBatch((c-1)*10, 10, -1, 0)
		ack, err := ls.checkpoint(rec, c)
		rec.Release()
		mustAck(t, ack, err, map[string]any{"checkpoint": float64(c)})
	}
	tail := simpleBatch(20, 5, -1, 0)
	defer tail.Release()
	ls.send(tail, "")
	res := ls.finish()
	wantOK(t, res)
	wantAck(t, res.acks[len(res.acks)-1], map[string]any{"type": "done", "total_rows": 25.0, "last_checkpoint": 3.0,
		"committed_rows": 25.0, "discarded_rows": 0.0})

	status := writerStatus(t, env, writer)
	if status["found"] != true || status["last_checkpoint"] != 3.0 || status["committed_rows"] != 25.0 || status["topic"] != topic {
		t.Fatalf("writer-status %v, want checkpoint 3, 25 rows on %s", status, topic)
	}

	// Reopen: ready tells where to resume; checkpoint 3 is stale.
	ls, ready, err = env.open(t, desc, simpleSchema)
	mustAck(t, ready, err, map[string]any{"last_checkpoint": 3.0, "committed_rows": 25.0})
	dup := simpleBatch(20, 5, -1, 0)
	defer dup.Release()
	ls.send(dup, checkpoint(3))
	_, err = ls.ack()
	wantStatus(t, ls.statusOf(err), codes.FailedPrecondition, string(flightsink.ReasonStaleCheckpoint), "checkpoint 3 of writer "+writer+" is already committed")

	// A gap is refused, and nothing of it is written.
	ls, _, err = env.open(t, desc, simpleSchema)
	if err != nil {
		t.Fatal(err)
	}
	ls.send(dup, checkpoint(5))
	_, err = ls.ack()
	wantStatus(t, ls.statusOf(err), codes.FailedPrecondition, string(flightsink.ReasonCheckpointGap), "expected checkpoint 4", "got 5")

	// The resume continues with checkpoint 4.
	ls, _, err = env.open(t, desc, simpleSchema)
	if err != nil {
		t.Fatal(err)
	}
	next := simpleBatch(25, 5, -1, 0)
	defer next.Release()
	ack, err := ls.checkpoint(next, 4)
	mustAck(t, ack, err, map[string]any{"checkpoint": 4.0, "rows": 5.0})
	wantOK(t, ls.finish())

	// Another topic is refused.
	other := kafkatest.TopicName(t) + "-other"
	kafkatest.CreateTopic(t, env.brokers, other, 1, nil)
	_, _, err = env.open(t, eosDesc(other, "writer_id", writer), simpleSchema)
	if err == nil {
		t.Fatal("reopening the writer on another topic succeeded")
	}

	recs := kafkatest.ReadCommitted(t, env.brokers, topic)
	got := ids(t, recs)
	sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
	for i, id := range got {
		if id != int64(i) {
			t.Fatalf("ids %v: want 0..29 exactly once", summarize(got))
		}
	}
	if len(got) != 30 {
		t.Fatalf("%d records, want 30", len(got))
	}
}

// TestZombieFencing: a second stream with the same writer_id fences the
// first; the first ends with Aborted "fenced", and only its committed rows
// and the newer stream's rows are visible.
func TestZombieFencing(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	writer := "zombie-" + topic
	desc := eosDesc(topic, "writer_id", writer)

	old, _, err := env.open(t, desc, simpleSchema)
	if err != nil {
		t.Fatal(err)
	}
	a := simpleBatch(0, 10, -1, 0)
	defer a.Release()
	ack, err := old.checkpoint(a, 1)
	mustAck(t, ack, err, map[string]any{"checkpoint": 1.0})
	zombieRows := simpleBatch(1000, 10, -1, 0)
	defer zombieRows.Release()
	old.send(zombieRows, "") // in the old stream's open transaction

	newer, ready, err := env.open(t, desc, simpleSchema)
	mustAck(t, ready, err, map[string]any{"last_checkpoint": 1.0, "committed_rows": 10.0})
	b := simpleBatch(10, 10, -1, 0)
	defer b.Release()
	ack, err = newer.checkpoint(b, 2)
	mustAck(t, ack, err, map[string]any{"checkpoint": 2.0})

	// The zombie keeps going: its next commit fails.
	more := simpleBatch(2000, 10, -1, 0)
	defer more.Release()
	_, err = old.checkpoint(more, 2)
	wantStatus(t, old.statusOf(err), codes.Aborted, string(flightsink.ReasonFenced), "fenced", "writer "+writer+" was opened by a newer stream")

	wantOK(t, newer.finish())
	wantIDs(t, "read_committed", kafkatest.ReadCommitted(t, env.brokers, topic), 20)
}

// TestRowTooLargeMidTransaction: a row over max.message.bytes in the middle
// of a transaction aborts the whole open transaction, names the row, and
// leaves earlier checkpoints committed.
func TestRowTooLargeMidTransaction(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	limit := "3000"
	kafkatest.CreateTopic(t, env.brokers, topic, 1, map[string]*string{"max.message.bytes": &limit})
	first := simpleBatch(0, 5, -1, 0)
	defer first.Release()
	open := simpleBatch(5, 5, -1, 0)
	defer open.Release()
	bad := simpleBatch(10, 5, 3, 4000)
	defer bad.Release()
	res := env.put(t, eosDesc(topic), simpleSchema, batchMeta(first, checkpoint(1)), batch(open), batch(bad))
	wantStatus(t, res, codes.InvalidArgument, string(flightsink.ReasonBadRow), "stream row 13 (batch 2, row 3)", "durable_checkpoint=1 durable_rows=5")
	wantIDs(t, "read_committed", kafkatest.ReadCommitted(t, env.brokers, topic), 5)
}

func writerStatus(t *testing.T, env *testEnv, writer string) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"writer_id": writer})
	stream, err := env.client.DoAction(context.Background(), &flight.Action{Type: flightsink.ActionWriterStatus, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	res, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("writer-status: more than one result: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(res.Body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestTransactionTimeout: when a transaction runs past
// kafka.transaction_timeout the broker aborts it; the stream's next
// checkpoint ends with Aborted "txn_timeout" saying why, and nothing of the
// transaction is visible.
func TestTransactionTimeout(t *testing.T) {
	env := startServer(t, func(_ *flightsink.Config, k *kafka.Config) { k.TransactionTimeout = 2 * time.Second })
	if !kafkatest.IsReal(env.kind) {
		t.Skip("the broker's own transaction timeout is a real-Kafka behaviour")
	}
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	ls, _, err := env.open(t, eosDesc(topic), simpleSchema)
	if err != nil {
		t.Fatal(err)
	}
	first := simpleBatch(0, 5, -1, 0)
	defer first.Release()
	ack, err := ls.checkpoint(first, 1)
	mustAck(t, ack, err, map[string]any{"checkpoint": 1.0})
	open := simpleBatch(5, 5, -1, 0)
	defer open.Release()
	ls.send(open, "")
	waitFor(t, "the open transaction to hold back read_committed", func() bool {
		return !kafkatest.LastStableEqualsHighWatermark(t, env.brokers, topic)
	})
	waitFor(t, "the broker to abort the timed-out transaction", func() bool {
		return kafkatest.LastStableEqualsHighWatermark(t, env.brokers, topic)
	})
	ls.meta(checkpoint(2))
	_, err = ls.ack()
	wantStatus(t, ls.statusOf(err), codes.Aborted, string(flightsink.ReasonTxnTimeout), "kafka.transaction_timeout", "checkpoint more often")
	wantIDs(t, "read_committed", kafkatest.ReadCommitted(t, env.brokers, topic), 5)
}

// TestEmptyCheckpoints: a checkpoint with no rows since the previous one is
// valid and acknowledged, for anonymous and named writers.
func TestEmptyCheckpoints(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	for _, desc := range []*flight.FlightDescriptor{eosDesc(topic), eosDesc(topic, "writer_id", "empty-"+topic)} {
		ls, _, err := env.open(t, desc, simpleSchema)
		if err != nil {
			t.Fatal(err)
		}
		ls.meta(checkpoint(1))
		ack, err := ls.ack()
		mustAck(t, ack, err, map[string]any{"checkpoint": 1.0, "rows": 0.0, "total_rows": 0.0})
		rec := simpleBatch(0, 3, -1, 0)
		ack, err = ls.checkpoint(rec, 2)
		rec.Release()
		mustAck(t, ack, err, map[string]any{"checkpoint": 2.0, "rows": 3.0})
		ls.meta(checkpoint(3))
		ack, err = ls.ack()
		mustAck(t, ack, err, map[string]any{"checkpoint": 3.0, "rows": 0.0, "total_rows": 3.0})
		wantOK(t, ls.finish())
	}
	if s := writerStatus(t, env, "empty-"+topic); s["last_checkpoint"] != 3.0 || s["committed_rows"] != 3.0 {
		t.Fatalf("writer-status %v, want checkpoint 3 with 3 rows", s)
	}
	if n := len(kafkatest.ReadCommitted(t, env.brokers, topic)); n != 6 {
		t.Fatalf("%d records, want 6", n)
	}
}

// TestTransactionTimeoutAboveBrokerMax: a kafka.transaction_timeout the
// broker would refuse is a start-up error naming the setting.
func TestTransactionTimeoutAboveBrokerMax(t *testing.T) {
	brokers, kind := kafkatest.Brokers(t)
	if !kafkatest.IsReal(kind) {
		t.Skip("transaction.max.timeout.ms is a real broker's setting")
	}
	cfg := kafka.DefaultConfig()
	cfg.Brokers = brokers
	cfg.TransactionTimeout = 16 * time.Minute // the broker's default maximum is 15 minutes
	sink, err := kafka.NewSink(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	err = sink.Prepare(context.Background())
	if err == nil || !strings.Contains(err.Error(), "kafka.transaction_timeout") || !strings.Contains(err.Error(), "transaction.max.timeout.ms") {
		t.Fatalf("Prepare: %v; want an error naming kafka.transaction_timeout and transaction.max.timeout.ms", err)
	}
}

// TestPipelinedCheckpoints: a client that sends 40 checkpoints without
// waiting for any ack (the server commits each while the next batches are
// read and encoded). Every checkpoint is acknowledged (acks may be
// coalesced, never out of order), the rows they count add up, the tail is
// committed as checkpoint 41, and Kafka holds every row once, in order.
func TestPipelinedCheckpoints(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	writer := "pipe-" + topic
	var steps []step
	for c := 1; c <= 40; c++ {
		a, b := simpleBatch((c-1)*20, 10, -1, 0), simpleBatch((c-1)*20+10, 10, -1, 0)
		defer a.Release()
		defer b.Release()
		steps = append(steps, batch(a), batchMeta(b, checkpoint(c)))
	}
	tail := simpleBatch(800, 7, -1, 0)
	defer tail.Release()
	steps = append(steps, batch(tail))
	res := env.put(t, eosDesc(topic, "writer_id", writer), simpleSchema, steps...)
	wantOK(t, res)

	var last, rows float64
	for _, a := range res.acks[1 : len(res.acks)-1] {
		if a["type"] != "checkpoint" {
			t.Fatalf("unexpected message %v between ready and done", a)
		}
		n := a["checkpoint"].(float64)
		if n <= last {
			t.Fatalf("ack for checkpoint %v after %v: acks out of order", n, last)
		}
		last, rows = n, rows+a["rows"].(float64)
		if a["total_rows"] != n*20 {
			t.Fatalf("ack %v: total_rows should be %v", a, n*20)
		}
	}
	if last != 40 || rows != 800 {
		t.Fatalf("the acks reach checkpoint %v with %v rows; want 40 and 800", last, rows)
	}
	wantAck(t, res.acks[len(res.acks)-1], map[string]any{"type": "done", "total_rows": 807.0, "last_checkpoint": 41.0, "committed_rows": 807.0, "discarded_rows": 0.0})
	wantIDs(t, "read_committed", kafkatest.ReadCommitted(t, env.brokers, topic), 807)
	if st := writerStatus(t, env, writer); st["last_checkpoint"] != 41.0 || st["committed_rows"] != 807.0 {
		t.Fatalf("writer-status %v, want checkpoint 41 and 807 rows", st)
	}
}

// TestPipelinedCheckpointThenFailure: the stream fails (a client abort, a
// bad row) while an unacknowledged checkpoint may still be committing. The
// checkpoint's commit completes and the error says so; what came after it
// is invisible.
func TestPipelinedCheckpointThenFailure(t *testing.T) {
	env := startServer(t)
	for _, tc := range []struct {
		name     string
		last     func() step
		code     codes.Code
		reason   flightsink.Reason
		fragment string
	}{
		{"abort", func() step { return metaOnly(`{"abort":"upstream failed"}`) }, codes.Aborted, flightsink.ReasonClientAbort, "upstream failed"},
		{"bad row", func() step { return batch(simpleBatch(40, 5, 2, 2_000_000)) }, codes.InvalidArgument, flightsink.ReasonBadRow, "stream row 42 (batch 4, row 2)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := kafkatest.TopicName(t)
			kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
			first, second := simpleBatch(0, 10, -1, 0), simpleBatch(10, 10, -1, 0)
			open1, open2 := simpleBatch(20, 10, -1, 0), simpleBatch(30, 10, -1, 0)
			last := tc.last()
			for _, r := range []arrow.RecordBatch{first, second, open1, open2, last.rec} {
				if r != nil {
					defer r.Release()
				}
			}
			res := env.put(t, eosDesc(topic), simpleSchema,
				batch(first), batchMeta(second, checkpoint(1)), batch(open1), batch(open2), last)
			wantStatus(t, res, tc.code, string(tc.reason), tc.fragment, "durable_checkpoint=1 durable_rows=20")
			wantIDs(t, "read_committed", kafkatest.ReadCommitted(t, env.brokers, topic), 20)
		})
	}
}
