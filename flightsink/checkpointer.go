package flightsink

import (
	"context"
	"time"

	"github.com/flightsink/flightsink/kafka/sinkapi"
)

// streamWriter is what a stream needs of its Kafka writer: at-least-once
// and exactly-once streams differ only here.
type streamWriter = sinkapi.Writer

// checkpointer owns a stream's checkpoint state: what was sent, what is
// held while a commit runs, what is durable and what was acknowledged. A
// checkpoint commits in the background, one at a time, in order: the read
// loop goes on reading and encoding meanwhile, and the batches it sends
// are held (within the writer's budget) until the commit is over, then
// produced after it. Only the stream's loop calls its methods; the commit
// goroutine touches nothing but its pendingCommit, the ack and the metric.
type checkpointer struct {
	ctx    context.Context
	cancel context.CancelCauseFunc // a failed commit ends the stream at once: the client may wait for its ack
	w      streamWriter
	// ack queues a checkpoint's acknowledgement; nil when the stream sends
	// none (an ingest).
	ack func(checkpointAck)
	// badRows: the acks count skipped and dead-lettered rows.
	badRows bool
	// offsets: the acks carry the offsets written (report_offsets).
	offsets bool
	// tailOffsets are the offsets of the tail committed by close.
	tailOffsets sinkapi.Offsets
	// took reports how long a checkpoint took (a metric).
	took func(time.Duration)
	// produced reports records handed to the writer (a metric).
	produced func(records, bytes int)

	durableRows    int64  // rows Kafka made durable
	acked          counts // the stream's counts when the previous ack was queued
	lastCheckpoint int64  // the newest durable checkpoint, 0 for none
	pending        *pendingCommit
	held           []sinkapi.Chunk
	heldBytes      int
}

// counts are a stream's running totals: rows read, and among them rows
// skipped or dead-lettered under its bad-row policy.
type counts struct{ rows, skipped, deadLettered int64 }

// pendingCommit is a checkpoint being made durable in the background.
type pendingCommit struct {
	n    int64 // checkpoint number
	rows int64 // the stream's rows at the marker: what the checkpoint makes durable
	done chan struct{}
	err  error // set before done is closed
}

// send produces a chunk of records, or holds it while a commit runs and
// the writer's budget has room for it too; otherwise it waits for the
// commit first.
func (c *checkpointer) send(recs sinkapi.Chunk) error {
	if p := c.pending; p != nil {
		select {
		case <-p.done:
		default:
			size := recs.Size()
			if pending, limit := c.w.Backlog(); pending+c.heldBytes+size <= limit || len(c.held) == 0 && pending == 0 {
				c.held = append(c.held, recs)
				c.heldBytes += size
				return nil
			}
		}
		if err := c.settle(); err != nil {
			return err
		}
	}
	return c.produce(recs)
}

func (c *checkpointer) produce(recs sinkapi.Chunk) error {
	n, bytes := recs.Len(), recs.Bytes() // recs may be recycled once handed over
	if err := c.w.Produce(c.ctx, recs); err != nil {
		return err
	}
	c.produced(n, bytes)
	return nil
}

// start makes the stream's first at.rows rows durable as checkpoint n, in
// the background, after the previous checkpoint settled; p is what a named
// writer stores with it.
func (c *checkpointer) start(n int64, at counts, p sinkapi.Progress) error {
	if err := c.settle(); err != nil {
		return err
	}
	rows := at.rows
	pc := &pendingCommit{n: n, rows: rows, done: make(chan struct{})}
	ack := checkpointAck{checkpoint: n, rows: rows - c.acked.rows, totalRows: rows, badRows: c.badRows,
		skipped: at.skipped - c.acked.skipped, deadLettered: at.deadLettered - c.acked.deadLettered}
	c.acked = at
	c.pending = pc
	w, began := c.w, time.Now()
	go func() {
		defer close(pc.done)
		if pc.err = w.Checkpoint(c.ctx, p); pc.err != nil {
			c.cancel(pc.err)
			return
		}
		c.took(time.Since(began))
		if c.offsets {
			ack.offsets = w.TakeOffsets() // the writer's own records, up to this commit
		}
		if c.ack != nil {
			// Now, not when the loop next looks: it may be waiting for
			// the client's next batch, and the client for this ack.
			c.ack(ack)
		}
	}()
	return nil
}

// committing is the running commit's done channel, nil for none.
func (c *checkpointer) committing() <-chan struct{} {
	if c.pending == nil {
		return nil
	}
	return c.pending.done
}

// openSince is the stream row the open transaction starts at: what the
// running commit, or the last durable checkpoint, covers.
func (c *checkpointer) openSince() int64 {
	if c.pending != nil {
		return c.pending.rows
	}
	return c.durableRows
}

// settle waits for the running commit, takes its outcome and produces the
// batches held meanwhile, after it.
func (c *checkpointer) settle() error {
	p := c.pending
	if p == nil {
		return nil
	}
	<-p.done
	c.pending = nil
	if p.err != nil {
		c.held, c.heldBytes = nil, 0
		return p.err
	}
	c.durableRows, c.lastCheckpoint = p.rows, p.n
	held := c.held
	c.held, c.heldBytes = nil, 0
	for _, recs := range held {
		if err := c.produce(recs); err != nil {
			return err
		}
	}
	return nil
}

// settleAfterFailure waits for the running commit of a stream that failed
// for another reason, so its error says what is durable and the writer is
// closed only once the commit is over.
func (c *checkpointer) settleAfterFailure() {
	if p := c.pending; p != nil {
		<-p.done
		c.pending = nil
		c.held, c.heldBytes = nil, 0
		if p.err == nil {
			c.durableRows, c.lastCheckpoint = p.rows, p.n
		}
	}
}

// close ends the writer of a stream that ended cleanly: with commit, the
// rows up to rows become durable as checkpoint n (0: no number) first.
func (c *checkpointer) close(commit bool, n, rows int64, p sinkapi.Progress) error {
	if err := c.settle(); err != nil {
		return err
	}
	w := c.w
	c.w = nil
	if err := w.Close(c.ctx, commit, p); err != nil {
		return err
	}
	if c.offsets && commit {
		c.tailOffsets = w.TakeOffsets()
	}
	if commit {
		c.durableRows = rows
		if n > 0 {
			c.lastCheckpoint = n
		}
	}
	return nil
}

// abandon ends the writer of a failed stream, on a context of its own
// (the stream's may be over): an exactly-once writer aborts.
func (c *checkpointer) abandon() error {
	if c.w == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w := c.w
	c.w = nil
	return w.Close(ctx, false, sinkapi.Progress{})
}
