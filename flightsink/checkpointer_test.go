package flightsink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc/codes"

	"github.com/flightsink/flightsink/kafka/sinkapi"
)

// The checkpointer's tests run with a fake writer and fake chunks: no
// broker, no kfake, no Kafka client.

// fakeWriter records what a checkpointer asks of its writer. A Checkpoint
// blocks until gate is closed (when set) and then returns fail.
type fakeWriter struct {
	mu      sync.Mutex
	log     []string // "produce N", "checkpoint N", "close commit|abort"
	gate    chan struct{}
	fail    error
	pending int // Backlog's pending bytes
	limit   int // Backlog's budget
}

func (w *fakeWriter) add(s string) {
	w.mu.Lock()
	w.log = append(w.log, s)
	w.mu.Unlock()
}

func (w *fakeWriter) Produce(_ context.Context, recs sinkapi.Chunk) error {
	w.add(fmt.Sprintf("produce %d", recs.Len()))
	recs.Recycle()
	return nil
}

func (w *fakeWriter) Checkpoint(_ context.Context, p sinkapi.Progress) error {
	if w.gate != nil {
		<-w.gate
	}
	w.add(fmt.Sprintf("checkpoint %d", p.Checkpoint))
	return w.fail
}

func (w *fakeWriter) Close(_ context.Context, commit bool, p sinkapi.Progress) error {
	if commit {
		w.add(fmt.Sprintf("close commit %d", p.Checkpoint))
	} else {
		w.add("close abort")
	}
	return nil
}

func (w *fakeWriter) Backlog() (int, int) { return w.pending, w.limit }

func (w *fakeWriter) ReportOffsets() {}

func (w *fakeWriter) TakeOffsets() sinkapi.Offsets { return nil }

func (w *fakeWriter) events() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.log...)
}

// ackLog records the acks a checkpointer queues.
type ackLog struct {
	mu   sync.Mutex
	acks [][3]int64
}

func (a *ackLog) ack(c checkpointAck) {
	a.mu.Lock()
	a.acks = append(a.acks, [3]int64{c.checkpoint, c.rows, c.totalRows})
	a.mu.Unlock()
}

func (a *ackLog) get() [][3]int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([][3]int64(nil), a.acks...)
}

// fakeChunk stands for n records of 1 KB.
type fakeChunk struct{ n int }

func (c *fakeChunk) Len() int   { return c.n }
func (c *fakeChunk) Bytes() int { return c.n << 10 }
func (c *fakeChunk) Size() int  { return c.n << 10 }
func (c *fakeChunk) Recycle()   {}

func (c *fakeChunk) Rejected() []sinkapi.RowError { return nil }

func chunkOf(_ *testing.T, n int) sinkapi.Chunk { return &fakeChunk{n} }

func newTestCheckpointer(w *fakeWriter, acks *ackLog) (*checkpointer, context.Context) {
	ctx, cancel := context.WithCancelCause(context.Background())
	return &checkpointer{ctx: ctx, cancel: cancel, w: w, ack: acks.ack,
		took: func(time.Duration) {}, produced: func(int, int) {}}, ctx
}

func wantLog(t *testing.T, w *fakeWriter, want ...string) {
	t.Helper()
	got := w.events()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("writer saw %q, want %q", got, want)
	}
}

// TestCheckpointerPipelines: batches sent while a commit runs are held,
// then produced after it; the ack is queued once the commit is durable,
// with the rows since the previous ack and the total.
func TestCheckpointerPipelines(t *testing.T) {
	w := &fakeWriter{gate: make(chan struct{}), limit: 1 << 20}
	acks := &ackLog{}
	c, _ := newTestCheckpointer(w, acks)
	if err := c.send(chunkOf(t, 10)); err != nil {
		t.Fatal(err)
	}
	if err := c.start(1, counts{rows: 10}, sinkapi.Progress{Checkpoint: 1}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ { // the commit is still running: held
		if err := c.send(chunkOf(t, 5)); err != nil {
			t.Fatal(err)
		}
	}
	wantLog(t, w, "produce 10")
	if len(acks.get()) != 0 || c.durableRows != 0 {
		t.Fatal("acknowledged before the commit ended")
	}
	close(w.gate)
	<-c.committing() // what the loop sees as evCommitted
	if err := c.settle(); err != nil {
		t.Fatal(err)
	}
	wantLog(t, w, "produce 10", "checkpoint 1", "produce 5", "produce 5", "produce 5")
	if got := acks.get(); fmt.Sprint(got) != "[[1 10 10]]" || c.durableRows != 10 || c.lastCheckpoint != 1 {
		t.Fatalf("acks %v, durable %d / %d", got, c.durableRows, c.lastCheckpoint)
	}
	// the next checkpoint settles nothing new, covers the held rows
	w.gate = nil
	if err := c.start(2, counts{rows: 25}, sinkapi.Progress{Checkpoint: 2}); err != nil {
		t.Fatal(err)
	}
	if err := c.close(true, 3, 25, sinkapi.Progress{Checkpoint: 3}); err != nil {
		t.Fatal(err)
	}
	wantLog(t, w, "produce 10", "checkpoint 1", "produce 5", "produce 5", "produce 5", "checkpoint 2", "close commit 3")
	if got := acks.get(); fmt.Sprint(got) != "[[1 10 10] [2 15 25]]" || c.durableRows != 25 || c.lastCheckpoint != 3 {
		t.Fatalf("acks %v, durable %d / %d", got, c.durableRows, c.lastCheckpoint)
	}
}

// TestCheckpointerBudget: with the writer's budget full, a batch sent
// during a commit waits for the commit instead of being held.
func TestCheckpointerBudget(t *testing.T) {
	w := &fakeWriter{gate: make(chan struct{}), pending: 100, limit: 100}
	c, _ := newTestCheckpointer(w, &ackLog{})
	if err := c.start(1, counts{rows: 0}, sinkapi.Progress{Checkpoint: 1}); err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	go func() { sent <- c.send(chunkOf(t, 7)) }()
	select {
	case err := <-sent:
		t.Fatalf("send returned (%v) while the commit ran with the budget full", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(w.gate)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	wantLog(t, w, "checkpoint 1", "produce 7")
}

// TestCheckpointerCommitFails: a failed background commit (fenced) ends
// the stream at once through its context, drops what was held, and
// leaves the durable state as it was; the status is Aborted "fenced".
func TestCheckpointerCommitFails(t *testing.T) {
	fenced := fmt.Errorf("%w: INVALID_PRODUCER_EPOCH", sinkapi.ErrFenced)
	w := &fakeWriter{gate: make(chan struct{}), fail: fenced, limit: 1 << 20}
	acks := &ackLog{}
	c, ctx := newTestCheckpointer(w, acks)
	if err := c.start(1, counts{rows: 10}, sinkapi.Progress{Checkpoint: 1}); err != nil {
		t.Fatal(err)
	}
	if err := c.send(chunkOf(t, 5)); err != nil {
		t.Fatal(err)
	}
	close(w.gate)
	<-ctx.Done()
	if cause := context.Cause(ctx); !errors.Is(cause, sinkapi.ErrFenced) {
		t.Fatalf("stream context ended with %v, want the commit's error", cause)
	}
	err := c.settle()
	if e := classify(err); e.Code != codes.Aborted || e.Reason != ReasonFenced {
		t.Fatalf("settle: %v (%v %v), want Aborted fenced", err, e.Code, e.Reason)
	}
	wantLog(t, w, "checkpoint 1")
	if len(acks.get()) != 0 || c.durableRows != 0 || c.lastCheckpoint != 0 || len(c.held) != 0 {
		t.Fatalf("after a failed commit: acks %v, durable %d / %d, %d held", acks.get(), c.durableRows, c.lastCheckpoint, len(c.held))
	}
	if err := c.abandon(); err != nil {
		t.Fatal(err)
	}
	wantLog(t, w, "checkpoint 1", "close abort")
}

// TestCheckpointerAbortDuringCommit: a stream failing for another reason
// (an abort marker, a bad row) while a commit runs waits for it, so its
// error reports what became durable, then aborts the rest.
func TestCheckpointerAbortDuringCommit(t *testing.T) {
	w := &fakeWriter{gate: make(chan struct{}), limit: 1 << 20}
	acks := &ackLog{}
	c, _ := newTestCheckpointer(w, acks)
	if err := c.start(4, counts{rows: 40}, sinkapi.Progress{Checkpoint: 4}); err != nil {
		t.Fatal(err)
	}
	if err := c.send(chunkOf(t, 3)); err != nil { // held, never produced
		t.Fatal(err)
	}
	go func() { time.Sleep(20 * time.Millisecond); close(w.gate) }()
	c.settleAfterFailure()
	if c.durableRows != 40 || c.lastCheckpoint != 4 {
		t.Fatalf("durable %d / %d, want 40 / 4", c.durableRows, c.lastCheckpoint)
	}
	if err := c.abandon(); err != nil {
		t.Fatal(err)
	}
	wantLog(t, w, "checkpoint 4", "close abort")
	if got := acks.get(); fmt.Sprint(got) != "[[4 40 40]]" {
		t.Fatalf("acks %v", got)
	}
}

// TestAckerCoalesces: when the client reads slower than the server
// checkpoints, a newer checkpoint ack replaces an unsent one, its rows
// adding up; ready comes first and done last.
func TestAckerCoalesces(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var sent []map[string]any
	a := newAcker(func(r *flight.PutResult) error {
		<-release
		var m map[string]any
		if err := json.Unmarshal(r.AppMetadata, &m); err != nil {
			return err
		}
		mu.Lock()
		sent = append(sent, m)
		mu.Unlock()
		return nil
	})
	a.Ready([]byte(`{"type":"ready"}`))
	time.Sleep(20 * time.Millisecond) // the sender is blocked on ready
	a.Checkpoint(checkpointAck{checkpoint: 1, rows: 10, totalRows: 10})
	a.Checkpoint(checkpointAck{checkpoint: 2, rows: 10, totalRows: 20})
	a.Checkpoint(checkpointAck{checkpoint: 3, rows: 5, totalRows: 25})
	a.Done([]byte(`{"type":"done"}`))
	close(release)
	a.Stop()
	got := fmt.Sprint(sent)
	want := "[map[type:ready] map[checkpoint:3 rows:25 total_rows:25 type:checkpoint] map[type:done]]"
	if got != want {
		t.Fatalf("sent %s, want %s", got, want)
	}
}
