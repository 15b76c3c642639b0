package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/twmb/franz-go/pkg/kgo"

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
func rows(mem memory.Allocator, first, n int64) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, rowSchema)
	defer b.Release()
	for i := first; i < first+n; i++ {
		b.Field(0).(*array.Int64Builder).Append(i)
		b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("k%d", i%keys))
		b.Field(2).(*array.StringBuilder).Append(fmt.Sprintf("row %d of the fault test", i))
	}
	return b.NewRecordBatch()
}

// Shape of the writer's stream: batches of batchRows, a checkpoint every
// ckptBatches batches, at most window checkpoints unacknowledged, one batch
// every pace (the machine is small and shared).
const (
	batchRows   = 500
	ckptBatches = 2
	window      = 3
	pace        = 50 * time.Millisecond
)

// writer is a named exactly-once writer that streams ids 0, 1, 2, ... with
// pipelined checkpoints until stopped, and resumes from what ready says
// after every retryable failure. It records every acknowledged row count,
// so a resume that starts below one (a lost acknowledged checkpoint) is
// caught as it happens.
type writer struct {
	t        testing.TB
	addr     string
	topic    string
	writerID string
	mem      *memory.CheckedAllocator

	mu       sync.Mutex
	acked    int64       // the highest row count an ack covered
	ackedAt  []time.Time // when each ack that raised acked arrived
	failures []failure   // every failed attempt
	lies     []string    // resumes below an acknowledged row count
	done     client.Done
}

// failure is one failed attempt of the writer.
type failure struct {
	at        time.Time
	err       string
	retryable bool
}

func newWriter(t testing.TB, addr, topic, writerID string) *writer {
	return &writer{t: t, addr: addr, topic: topic, writerID: writerID, mem: memory.NewCheckedAllocator(memory.NewGoAllocator())}
}

// run writes until stop is closed (then closes the stream at a checkpoint
// boundary) or a failure is not retryable; it returns that failure, or the
// context's error.
func (w *writer) run(ctx context.Context, stop <-chan struct{}) error {
	backoff := 100 * time.Millisecond
	for {
		err := w.session(ctx, stop)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var fe *client.Error
		retryable := errors.As(err, &fe) && fe.Retryable()
		w.mu.Lock()
		w.failures = append(w.failures, failure{at: time.Now(), err: err.Error(), retryable: retryable})
		w.mu.Unlock()
		if !retryable {
			return fmt.Errorf("a failure that says it is not retryable: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// session is one stream: open, resume, write until stopped or failed.
func (w *writer) session(ctx context.Context, stop <-chan struct{}) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c, err := client.Dial(w.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	fw, err := c.Open(sctx, client.Descriptor{Topic: w.topic, KeyField: "key", Delivery: "exactly_once", WriterID: w.writerID}, rowSchema)
	if err != nil {
		return err
	}
	pos := fw.Ready().CommittedRows
	w.note(pos, true)
	at := map[int64]int64{} // checkpoint → the row count it covers
	for batches := 0; ; {
		rec := rows(w.mem, pos, batchRows)
		err := fw.Write(rec)
		rec.Release()
		if err != nil {
			return err
		}
		pos += batchRows
		if batches++; batches%ckptBatches == 0 {
			n, err := fw.MarkCheckpoint()
			if err != nil {
				return err
			}
			at[n] = pos
			if n > window {
				if _, err := fw.WaitCheckpoint(sctx, n-window); err != nil {
					return err
				}
			}
			w.note(at[fw.Acked().Checkpoint], false)
			select {
			case <-stop:
				d, err := fw.Close(sctx)
				if err != nil {
					return err
				}
				w.note(d.CommittedRows, false)
				w.mu.Lock()
				w.done = d
				w.mu.Unlock()
				return nil
			default:
			}
		}
		select {
		case <-sctx.Done():
			return sctx.Err()
		case <-time.After(pace):
		}
	}
}

// note records an acknowledged row count; with resume, it is where the
// server says a new stream resumes, which must not be below any ack.
func (w *writer) note(rows int64, resume bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if resume {
		if rows < w.acked {
			w.lies = append(w.lies, fmt.Sprintf("a resume at %d rows, below the %d rows already acknowledged", rows, w.acked))
		}
		return
	}
	if rows > w.acked {
		w.acked = rows
		w.ackedAt = append(w.ackedAt, time.Now())
	}
}

// ackedRows is the highest acknowledged row count and when it was reached.
func (w *writer) ackedRows() (int64, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.ackedAt) == 0 {
		return w.acked, time.Time{}
	}
	return w.acked, w.ackedAt[len(w.ackedAt)-1]
}

// firstAckAfter is when the first ack after t arrived (zero if none yet).
func (w *writer) firstAckAfter(t time.Time) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range w.ackedAt {
		if a.After(t) {
			return a
		}
	}
	return time.Time{}
}

// failuresBetween counts the failed attempts in [from, to).
func (w *writer) failuresBetween(from, to time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, f := range w.failures {
		if !f.at.Before(from) && f.at.Before(to) {
			n++
		}
	}
	return n
}

// verify checks what Kafka holds against what the writer was told: the
// writer finished; every id in [0, committed) exactly once and no other;
// per-key order; every acknowledged row count within what is committed;
// no resume below an ack; and no transaction left open on the topic (the
// last stable offset reaches the high watermark within the transaction
// timeout).
func (w *writer) verify(t *testing.T, brokers []string) {
	t.Helper()
	w.mu.Lock()
	done, acked, lies, failures := w.done, w.acked, w.lies, len(w.failures)
	w.mu.Unlock()
	w.mem.AssertSize(t, 0)
	for _, l := range lies {
		t.Errorf("lying ack: %s", l)
	}
	total := done.CommittedRows
	if total == 0 || total < acked {
		t.Fatalf("the writer's done says %d rows committed, %d were acknowledged", total, acked)
	}
	deadline := time.Now().Add(txnTimeout + 10*time.Second)
	for !kafkatest.LastStableEqualsHighWatermark(t, brokers, w.topic) {
		if time.Now().After(deadline) {
			t.Fatalf("a transaction is still open on %s after the transaction timeout (%v)", w.topic, txnTimeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
	seen := make([]uint8, total)
	last := map[string]int64{}
	var records, bad int64
	kafkatest.ScanCommitted(t, brokers, w.topic, func(r *kgo.Record) {
		records++
		var v struct {
			ID  int64
			Key string
		}
		if err := json.Unmarshal(r.Value, &v); err != nil || v.ID < 0 || v.ID >= total || string(r.Key) != v.Key {
			if bad++; bad < 5 {
				t.Errorf("unexpected record %s[%d]@%d: key %q value %q (%v)", r.Topic, r.Partition, r.Offset, r.Key, r.Value, err)
			}
			return
		}
		if seen[v.ID] < 255 {
			seen[v.ID]++
		}
		if prev, ok := last[v.Key]; ok && v.ID <= prev {
			if bad++; bad < 5 {
				t.Errorf("key %s: id %d after %d: per-key order broken", v.Key, v.ID, prev)
			}
		}
		last[v.Key] = v.ID
	})
	var missing, dup int64
	for id, n := range seen {
		switch {
		case n == 0:
			if missing++; missing < 5 {
				t.Errorf("id %d missing", id)
			}
		case n > 1:
			if dup++; dup < 5 {
				t.Errorf("id %d written %d times", id, n)
			}
		}
	}
	if missing+dup+bad > 0 {
		t.Fatalf("%d ids missing, %d duplicated, %d records out of place, of %d (%d records read)", missing, dup, bad, total, records)
	}
	t.Logf("read_committed: %d records, ids [0, %d) each once, per-key order kept, every ack (up to %d rows) within them; %d failed attempts resumed",
		records, total, acked, failures)
}

// longestGap is the longest time in [from, to] without a new ack.
func (w *writer) longestGap(from, to time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	prev, gap := from, time.Duration(0)
	for _, a := range w.ackedAt {
		if a.After(from) && !a.After(to) {
			gap = max(gap, a.Sub(prev))
			prev = a
		}
	}
	return max(gap, to.Sub(prev))
}
