package flightsink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flightsink/flightsink/internal/ipcheader"
)

// receiver runs stream.Recv in its own goroutine so the read loop can stop
// waiting when the stream is canceled (client gone, server shutdown), and so
// the next message arrives while the current batch is being produced. It
// exits when Recv fails, which gRPC guarantees once the handler returned.
type receiver struct {
	ch   chan recvResult
	quit chan struct{}
	idle time.Duration // flight.idle_timeout
}

type recvResult struct {
	fd  *flight.FlightData
	err error
}

func startReceiver(stream flight.FlightService_DoPutServer, idle time.Duration) *receiver {
	r := &receiver{ch: make(chan recvResult, 1), quit: make(chan struct{}), idle: idle}
	go func() {
		for {
			fd, err := stream.Recv()
			select {
			case r.ch <- recvResult{fd, err}:
			case <-r.quit:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return r
}

// stop tells the receiver goroutine not to hand over more messages; it
// returns from Recv when the handler has returned.
func (r *receiver) stop() { close(r.quit) }

// next returns the next FlightData or the reason there is none.
func (r *receiver) next(ctx context.Context) (*flight.FlightData, error) {
	fd, _, err := r.nextOrWake(ctx, nil)
	return fd, err
}

// nextOrWake is next that also returns (with woke true) when wake is
// closed first, so the caller can act on it and wait again.
func (r *receiver) nextOrWake(ctx context.Context, wake <-chan struct{}) (fd *flight.FlightData, woke bool, err error) {
	idle := time.NewTimer(r.idle)
	defer idle.Stop()
	select {
	case <-wake:
		return nil, true, nil
	case <-idle.C:
		return nil, false, &Error{Code: codes.DeadlineExceeded, Reason: ReasonIdle,
			Msg: fmt.Sprintf("the client sent nothing for flight.idle_timeout (%v); the stream is closed", r.idle)}
	case res := <-r.ch:
		if res.err != nil {
			return nil, false, recvError(res.err)
		}
		return res.fd, false, nil
	case <-ctx.Done():
		return nil, false, r.explain(ctx, context.Cause(ctx))
	}
}

// explain replaces err, the error of a stream whose context ended, with the
// receive error that ended the RPC, when that says more than "canceled":
// gRPC ends a stream with an oversized message on its own, which cancels the
// context while the read loop may be anywhere. Once the RPC ended, Recv
// returns at once.
func (r *receiver) explain(ctx context.Context, err error) error {
	if !errors.Is(context.Cause(ctx), context.Canceled) {
		return err // our own cause (shutdown) is the truth
	}
	select {
	case res := <-r.ch:
		if res.err != nil {
			if rerr := recvError(res.err); !errors.Is(rerr, io.EOF) {
				var fe *Error
				if errors.As(rerr, &fe) && fe.Reason != ReasonClientGone {
					return rerr
				}
			}
		}
	case <-time.After(time.Second):
	}
	return err
}

// recvError keeps io.EOF (clean end) and names the setting for messages
// over the gRPC receive limit.
func recvError(err error) error {
	if errors.Is(err, io.EOF) {
		return io.EOF
	}
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.ResourceExhausted:
			return &Error{Code: codes.ResourceExhausted, Reason: ReasonTooLarge, Err: err,
				Msg: fmt.Sprintf("a message exceeds flight.max_message_bytes (%s); send smaller record batches or raise the setting", st.Message())}
		case codes.Canceled:
			return &Error{Code: codes.Canceled, Reason: ReasonClientGone, Err: err, Msg: "stream canceled by the client"}
		}
	}
	return err
}

// eventKind is what happened on a stream.
type eventKind int

const (
	evBatch     eventKind = iota // a record batch arrived, with its app_metadata
	evMarker                     // app_metadata arrived without a batch
	evCommitted                  // the background commit is over (the loop settles it)
	evEnd                        // the client closed its side cleanly
)

// event is one thing the stream loop acts on.
type event struct {
	kind eventKind
	rec  arrow.RecordBatch // evBatch: valid until the next call of next
	meta []byte            // evBatch (may be nil), evMarker
}

// eventSource turns a DoPut's FlightData into events for the stream loop:
// it reads the messages itself and hands the IPC reader only what it can
// decode at once (the schema, then dictionaries and a record batch), so
// the loop never waits inside the reader and a marker sent alone is seen
// as soon as it arrives (the client may be waiting for its ack). Each
// record batch or dictionary message is checked against the limits from
// its header before the reader decodes it.
//
// arrow-go's flight writer copies the metadata of the first
// WriteWithAppMetadata onto the schema and dictionary messages it sends
// lazily before that batch. So metadata on a schema or dictionary message is
// held back: dropped if the next record batch carries the same bytes,
// a marker of its own otherwise (before that batch, at the next
// metadata-only message, or at the end of the stream).
type eventSource struct {
	recv   *receiver
	limits *batchLimits
	queue  messageQueue
	reader *ipc.Reader
	held   []byte  // app_metadata of a schema or dictionary message
	out    []event // events worked out, not yet returned
	batch  int64   // the number the next record batch will have
}

// newEventSource reads the schema from the stream's first message and
// makes the IPC reader (decoding with mem).
func newEventSource(recv *receiver, first *flight.FlightData, limits *batchLimits, mem memory.Allocator) (*eventSource, error) {
	src := &eventSource{recv: recv, limits: limits}
	if err := src.push(first); err != nil {
		return nil, err
	}
	reader, err := ipc.NewReaderFromMessageReader(&src.queue, ipc.WithAllocator(mem))
	if err != nil {
		src.queue.Release()
		return nil, badStream("reading the schema: %v", err)
	}
	src.reader = reader
	limits.schema = reader.Schema()
	return src, nil
}

// Schema is the stream's schema.
func (s *eventSource) Schema() *arrow.Schema { return s.reader.Schema() }

// Release releases the reader and any queued message.
func (s *eventSource) Release() {
	s.reader.Release()
	s.queue.Release()
}

// next returns the next event. While a background commit runs, wake is
// its done channel: its closing is an evCommitted event.
func (s *eventSource) next(ctx context.Context, wake <-chan struct{}) (event, error) {
	for len(s.out) == 0 {
		fd, woke, err := s.recv.nextOrWake(ctx, wake)
		switch {
		case woke:
			return event{kind: evCommitted}, nil
		case errors.Is(err, io.EOF):
			s.flushHeld()
			s.out = append(s.out, event{kind: evEnd})
		case err != nil:
			return event{}, err
		default:
			if err := s.push(fd); err != nil {
				return event{}, err
			}
		}
	}
	ev := s.out[0]
	s.out = s.out[1:]
	if ev.kind == evBatch {
		if !s.reader.Next() {
			return event{}, s.readerError()
		}
		ev.rec = s.reader.RecordBatch()
	}
	return ev, nil
}

// push takes one FlightData: metadata alone is a marker; an IPC message is
// checked and queued for the reader, and a record batch becomes an event.
func (s *eventSource) push(fd *flight.FlightData) error {
	if len(fd.DataHeader) == 0 {
		s.flushHeld()
		if len(fd.AppMetadata) > 0 {
			s.out = append(s.out, event{kind: evMarker, meta: fd.AppMetadata})
		}
		return nil
	}
	h, err := ipcheader.Read(fd.DataHeader, fd.DataBody)
	if err != nil {
		return badStream("%v", err)
	}
	if h.Kind == ipcheader.KindRecordBatch || h.Kind == ipcheader.KindDictionaryBatch {
		if err := s.limits.check(h, s.batch); err != nil {
			return err
		}
	}
	msg, err := newIPCMessage(fd)
	if err != nil {
		return err
	}
	s.queue.push(msg)
	if msg.Type() == ipc.MessageRecordBatch {
		if s.held != nil && !bytes.Equal(s.held, fd.AppMetadata) {
			s.flushHeld()
		}
		s.held = nil
		s.batch++
		s.out = append(s.out, event{kind: evBatch, meta: fd.AppMetadata})
	} else if len(fd.AppMetadata) > 0 && !bytes.Equal(s.held, fd.AppMetadata) {
		s.flushHeld()
		s.held = fd.AppMetadata
	}
	return nil
}

// flushHeld turns held-back metadata into a marker of its own.
func (s *eventSource) flushHeld() {
	if s.held != nil {
		s.out = append(s.out, event{kind: evMarker, meta: s.held})
		s.held = nil
	}
}

// readerError is why the reader could not decode a batch: the bounded
// allocator's refusal as it is, anything else a malformed stream.
func (s *eventSource) readerError() error {
	err := s.reader.Err()
	var fe *Error
	if errors.As(err, &fe) {
		return fe
	}
	if err == nil {
		err = errors.New("no record batch")
	}
	return badStream("%v", err)
}

// messageQueue is the IPC reader's message source: the messages the event
// source queued, in order. It owns each message until the reader asks for
// the next.
type messageQueue struct {
	msgs []*ipc.Message
	cur  *ipc.Message
}

func (q *messageQueue) push(msg *ipc.Message) { q.msgs = append(q.msgs, msg) }

// Message implements ipc.MessageReader.
func (q *messageQueue) Message() (*ipc.Message, error) {
	if q.cur != nil {
		q.cur.Release()
		q.cur = nil
	}
	if len(q.msgs) == 0 {
		return nil, io.EOF // only when the reader asks out of turn
	}
	q.cur = q.msgs[0]
	q.msgs[0] = nil
	q.msgs = q.msgs[1:]
	return q.cur, nil
}

// Retain implements ipc.MessageReader.
func (q *messageQueue) Retain() {}

// Release implements ipc.MessageReader: it releases every message held.
func (q *messageQueue) Release() {
	if q.cur != nil {
		q.cur.Release()
		q.cur = nil
	}
	for _, m := range q.msgs {
		m.Release()
	}
	q.msgs = nil
}

// newIPCMessage wraps a FlightData's header and body; a header that is not
// a valid IPC message is an InvalidArgument, not a crash.
func newIPCMessage(fd *flight.FlightData) (msg *ipc.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			msg, err = nil, badStream("data_header is not a valid Arrow IPC message: %v", r)
		}
	}()
	msg = ipc.NewMessage(memory.NewBufferBytes(fd.DataHeader), memory.NewBufferBytes(fd.DataBody))
	switch msg.Type() {
	case ipc.MessageSchema, ipc.MessageDictionaryBatch, ipc.MessageRecordBatch:
		return msg, nil
	}
	t := msg.Type()
	msg.Release()
	return nil, badStream("unexpected IPC message type %v; a DoPut stream carries a schema, dictionaries and record batches", t)
}

func badStream(format string, args ...any) *Error {
	return &Error{Code: codes.InvalidArgument, Reason: ReasonBadStream, Msg: "invalid Arrow IPC stream: " + fmt.Sprintf(format, args...)}
}
