package flightsink

import (
	"encoding/json"

	"strconv"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/flight"

	"github.com/flightsink/flightsink/kafka/sinkapi"
)

// acker is the only goroutine that sends on a DoPut stream. The read loop
// queues acks without blocking; when the client reads slower than the server
// checkpoints, a newer checkpoint ack replaces an unsent older one (an ack for
// N says every checkpoint ≤ N is durable). ready and done are always sent.
type acker struct {
	send func(*flight.PutResult) error

	mu      sync.Mutex
	ready   []byte
	ckpt    checkpointAck
	hasCkpt bool
	done    []byte
	stopped bool
	wake    chan struct{}
	exited  chan struct{}
}

// checkpointAck is one (possibly coalesced) checkpoint acknowledgement.
type checkpointAck struct {
	checkpoint int64
	rows       int64 // rows made durable since the previous ack that was sent
	totalRows  int64
	// Under a bad-row policy other than fail (badRows): the rows among
	// rows left out, skipped or dead-lettered.
	badRows               bool
	skipped, deadLettered int64
	// report_offsets: the offsets written since the previous ack sent.
	offsets sinkapi.Offsets
}

func newAcker(send func(*flight.PutResult) error) *acker {
	a := &acker{send: send, wake: make(chan struct{}, 1), exited: make(chan struct{})}
	go a.loop()
	return a
}

func (a *acker) notify() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Ready queues the ready message.
func (a *acker) Ready(msg []byte) {
	a.mu.Lock()
	a.ready = msg
	a.mu.Unlock()
	a.notify()
}

// Checkpoint queues a checkpoint ack, merging it into an unsent one.
func (a *acker) Checkpoint(ack checkpointAck) {
	a.mu.Lock()
	if a.hasCkpt {
		ack.rows += a.ckpt.rows
		ack.skipped += a.ckpt.skipped
		ack.deadLettered += a.ckpt.deadLettered
		if ack.offsets != nil && a.ckpt.offsets != nil {
			ack.offsets.Merge(a.ckpt.offsets)
		}
	}
	a.ckpt = ack
	a.hasCkpt = true
	a.mu.Unlock()
	a.notify()
}

// Done queues the final message; it is sent after any pending ack.
func (a *acker) Done(msg []byte) {
	a.mu.Lock()
	a.done = msg
	a.mu.Unlock()
	a.notify()
}

// Stop sends what is queued, then stops the sender and waits for it: after
// Stop returns nothing touches the stream, so the handler may return.
func (a *acker) Stop() {
	a.mu.Lock()
	a.stopped = true
	a.mu.Unlock()
	a.notify()
	<-a.exited
}

func (a *acker) loop() {
	defer close(a.exited)
	failed := false
	for range a.wake {
		for {
			a.mu.Lock()
			var msg []byte
			switch {
			case a.ready != nil:
				msg, a.ready = a.ready, nil
			case a.hasCkpt:
				msg = a.ckpt.json()
				a.hasCkpt = false
			case a.done != nil:
				msg, a.done = a.done, nil
			}
			stopped := a.stopped
			a.mu.Unlock()
			if msg == nil {
				if stopped {
					return
				}
				break
			}
			if !failed {
				// A failed send means the client is gone; keep draining the
				// queue without sending so Stop never waits on a dead stream.
				failed = a.send(&flight.PutResult{AppMetadata: msg}) != nil
			}
		}
	}
}

func (c checkpointAck) json() []byte {
	b := make([]byte, 0, 96)
	b = append(b, `{"type":"checkpoint","checkpoint":`...)
	b = strconv.AppendInt(b, c.checkpoint, 10)
	b = append(b, `,"rows":`...)
	b = strconv.AppendInt(b, c.rows, 10)
	b = append(b, `,"total_rows":`...)
	b = strconv.AppendInt(b, c.totalRows, 10)
	if c.badRows {
		b = append(b, `,"skipped_rows":`...)
		b = strconv.AppendInt(b, c.skipped, 10)
		b = append(b, `,"dead_lettered_rows":`...)
		b = strconv.AppendInt(b, c.deadLettered, 10)
	}
	if c.offsets != nil {
		o, _ := json.Marshal(c.offsets)
		b = append(append(b, `,"offsets":`...), o...)
	}
	return append(b, '}')
}
