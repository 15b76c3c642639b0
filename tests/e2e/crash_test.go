package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"

	client "github.com/flightsink/flightsink/clients/go/fsclient"
	"github.com/flightsink/flightsink/internal/kafkatest"
)

var rowSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "key", Type: arrow.BinaryTypes.String},
	{Name: "payload", Type: arrow.BinaryTypes.String},
}, nil)

const keys = 16

// rows builds ids [first, first+n): the source is replayable, so a resumed
// writer can start from any committed row count.
func rows(first, n int64) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, rowSchema)
	defer b.Release()
	for i := first; i < first+n; i++ {
		b.Field(0).(*array.Int64Builder).Append(i)
		b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("k%d", i%keys))
		b.Field(2).(*array.StringBuilder).Append(fmt.Sprintf("row %d of a resumable upload", i))
	}
	return b.NewRecordBatch()
}

// upload is a resumable writer: it opens writerID, skips the rows the server
// says are committed, and writes the rest with a checkpoint every ckpt rows.
// afterBatch runs after each batch is sent (tests crash things there).
func upload(ctx context.Context, addr, topic, writerID string, total, batch, ckpt int64, afterBatch func(pos int64)) (client.Done, error) {
	return uploadWith(ctx, addr, topic, writerID, total, batch, ckpt, false, afterBatch)
}

// uploadWith is upload; pipelined marks checkpoints without waiting for
// their acks (MarkCheckpoint), as a loader that keeps its source does.
func uploadWith(ctx context.Context, addr, topic, writerID string, total, batch, ckpt int64, pipelined bool, afterBatch func(pos int64)) (client.Done, error) {
	c, err := client.Dial(addr)
	if err != nil {
		return client.Done{}, err
	}
	defer c.Close()
	w, err := c.Open(ctx, client.Descriptor{Topic: topic, KeyField: "key", Delivery: "exactly_once", WriterID: writerID}, rowSchema)
	if err != nil {
		return client.Done{}, err
	}
	pos := w.Ready().CommittedRows
	for pos < total {
		n := min(batch, total-pos)
		rec := rows(pos, n)
		err := w.Write(rec)
		rec.Release()
		if err != nil {
			return client.Done{}, err
		}
		pos += n
		if afterBatch != nil {
			afterBatch(pos)
		}
		switch {
		case pos%ckpt != 0:
		case pipelined:
			if _, err := w.MarkCheckpoint(); err != nil {
				return client.Done{}, err
			}
		default:
			if _, err := w.Checkpoint(ctx); err != nil {
				return client.Done{}, err
			}
		}
	}
	return w.Close(ctx)
}

// checkExactlyOnce reads the topic read_committed: every id in [0, total)
// exactly once, and each key's ids in increasing order.
func checkExactlyOnce(t *testing.T, brokers []string, topic string, total int64) {
	t.Helper()
	recs := kafkatest.ReadCommitted(t, brokers, topic)
	seen := make([]int, total)
	last := map[string]int64{}
	for _, r := range recs {
		var v struct {
			ID  int64
			Key string
		}
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatalf("value %q: %v", r.Value, err)
		}
		if v.ID < 0 || v.ID >= total {
			t.Fatalf("unexpected id %d", v.ID)
		}
		seen[v.ID]++
		if string(r.Key) != v.Key {
			t.Fatalf("record key %q, value key %q", r.Key, v.Key)
		}
		if prev, ok := last[v.Key]; ok && v.ID <= prev {
			t.Fatalf("key %s: id %d after %d: per-key order broken", v.Key, v.ID, prev)
		}
		last[v.Key] = v.ID
	}
	missing, dup := 0, 0
	for id, n := range seen {
		if n == 0 {
			missing++
			if missing < 5 {
				t.Errorf("id %d missing", id)
			}
		}
		if n > 1 {
			dup++
			if dup < 5 {
				t.Errorf("id %d written %d times", id, n)
			}
		}
	}
	if missing+dup > 0 {
		t.Fatalf("%d ids missing, %d duplicated, of %d (%d records read)", missing, dup, total, len(recs))
	}
	t.Logf("read_committed: %d records, every id once, per-key order kept", len(recs))
}

// TestCrashAndResume: the server is killed with SIGKILL in the middle of a
// 200k-row upload (checkpoint every 10k); a new server starts; the client
// reconnects with the same writer_id, reads where to resume from ready, and
// finishes. Every row is in Kafka exactly once, in per-key order.
func TestCrashAndResume(t *testing.T) { testCrashAndResume(t, false) }

// TestCrashAndResumePipelined is TestCrashAndResume with a client that
// never waits for a checkpoint's ack (the server commits while the next
// batches stream in): at the crash any number of checkpoints may be
// committed, and the resume starts from whatever ready says.
func TestCrashAndResumePipelined(t *testing.T) { testCrashAndResume(t, true) }

func testCrashAndResume(t *testing.T, pipelined bool) {
	brokers := testBrokers(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, brokers, topic, 4, nil)
	srv := startServer(t, serverConfig{brokers: brokers, replica: "crash", prefix: uniquePrefix(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	const total, batch, ckpt = 200_000, 2_000, 10_000
	killed := false
	crash := func(pos int64) {
		if !killed && pos == 84_000 { // checkpoint 8 committed, 4 batches of checkpoint 9 open
			killed = true
			srv.kill()
		}
	}
	_, err := uploadWith(ctx, srv.addr, topic, "crash-"+topic, total, batch, ckpt, pipelined, crash)
	if err == nil || !killed {
		t.Fatalf("the first upload ended with %v (killed: %v); want a failure from the crash", err, killed)
	}
	t.Logf("first upload failed as the server died: %v", err)
	n := len(kafkatest.ReadCommitted(t, brokers, topic))
	switch {
	case !pipelined && n != 80_000:
		t.Fatalf("after the crash read_committed shows %d rows, want the 80000 of checkpoints 1-8", n)
	case pipelined && (n > 80_000 || n%ckpt != 0):
		t.Fatalf("after the crash read_committed shows %d rows, want whole checkpoints of the first 80000", n)
	}
	t.Logf("after the crash read_committed shows %d rows", n)

	srv.start()
	var done client.Done
	for attempt := 0; ; attempt++ {
		done, err = uploadWith(ctx, srv.addr, topic, "crash-"+topic, total, batch, ckpt, pipelined, nil)
		var fe *client.Error
		if err == nil || attempt == 5 || (errors.As(err, &fe) && !fe.Retryable()) {
			break
		}
		t.Logf("retrying after %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if done.CommittedRows != total || done.LastCheckpoint != total/ckpt {
		t.Fatalf("done %+v, want committed_rows %d and last checkpoint %d", done, total, total/ckpt)
	}
	checkExactlyOnce(t, brokers, topic, total)
}

// TestFencingAcrossReplicas: two server processes, one writer_id. The newer
// stream (on the other replica) fences the older one, which ends with
// Aborted "fenced"; only the older's committed rows and the newer's rows
// are visible.
func TestFencingAcrossReplicas(t *testing.T) {
	brokers := testBrokers(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, brokers, topic, 1, nil)
	prefix := uniquePrefix(t)
	a := startServer(t, serverConfig{brokers: brokers, replica: "a", prefix: prefix})
	b := startServer(t, serverConfig{brokers: brokers, replica: "b", prefix: prefix})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	desc := client.Descriptor{Topic: topic, KeyField: "key", Delivery: "exactly_once", WriterID: "fence-" + topic}

	ca, err := client.Dial(a.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	older, err := ca.Open(ctx, desc, rowSchema)
	if err != nil {
		t.Fatal(err)
	}
	write(t, older, 0, 100)
	if _, err := older.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	write(t, older, 1_000_000, 100) // open transaction of the soon-to-be zombie

	cb, err := client.Dial(b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	newer, err := cb.Open(ctx, desc, rowSchema)
	if err != nil {
		t.Fatal(err)
	}
	if r := newer.Ready(); r.LastCheckpoint != 1 || r.CommittedRows != 100 {
		t.Fatalf("newer stream's ready %+v, want checkpoint 1 with 100 rows", r)
	}
	write(t, newer, 100, 100)
	if _, err := newer.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}

	write(t, older, 2_000_000, 100)
	_, err = older.Checkpoint(ctx)
	var fe *client.Error
	if !errors.As(err, &fe) || fe.Code != codes.Aborted || fe.Reason != "fenced" {
		t.Fatalf("zombie checkpoint: %v; want Aborted with reason fenced", err)
	}
	t.Logf("zombie stream ended: %v", fe)
	if _, err := newer.Close(ctx); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, brokers, topic, 200)
}

func write(t *testing.T, w *client.Writer, first, n int64) {
	t.Helper()
	rec := rows(first, n)
	defer rec.Release()
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
}

// TestRestartAbortsLingeringTransaction: a server is killed while an
// anonymous exactly-once stream has records in an open transaction, which
// holds back read_committed consumers. Once the restarted server is ready,
// the partition's last stable offset equals its high watermark: the pool
// ids were re-initialised, which aborted the transaction.
func TestRestartAbortsLingeringTransaction(t *testing.T) {
	brokers := testBrokers(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, brokers, topic, 1, nil)
	srv := startServer(t, serverConfig{brokers: brokers, replica: "linger", prefix: uniquePrefix(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	c, err := client.Dial(srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w, err := c.Open(ctx, client.Descriptor{Topic: topic, Delivery: "exactly_once"}, rowSchema)
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, 0, 50)
	waitUntil(t, "the open transaction's records to reach the log", func() bool {
		return len(kafkatest.ReadUncommitted(t, brokers, topic)) == 50
	})
	srv.kill()
	if kafkatest.LastStableEqualsHighWatermark(t, brokers, topic) {
		t.Fatal("no open transaction after the kill; the test cannot show the restart's effect")
	}
	srv.start()
	if !kafkatest.LastStableEqualsHighWatermark(t, brokers, topic) {
		t.Fatal("after the restart the open transaction still holds back read_committed consumers")
	}
	if n := len(kafkatest.ReadCommitted(t, brokers, topic)); n != 0 {
		t.Fatalf("read_committed shows %d records of the aborted transaction", n)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
