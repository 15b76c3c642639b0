package flightsink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

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

// messageSource feeds the ipc reader with the stream's IPC messages and
// handles app_metadata that does not travel with a record batch (pyarrow's
// write_metadata sends it alone; arrow-go's flight reader cannot read such
// messages). Markers on record batch messages are left to the read loop, so
// they take effect after the batch is produced.
//
// arrow-go's flight writer copies the metadata of the first
// WriteWithAppMetadata onto the schema and dictionary messages it sends
// lazily before that batch. So metadata on a schema or dictionary message is
// held back: dropped if the next record batch carries the same bytes,
// handled on its own otherwise (before that batch, at the next
// metadata-only message, or at the end of the stream).
type messageSource struct {
	ctx      context.Context
	recv     *receiver
	first    *flight.FlightData
	onMarker func(meta []byte) error
	limits   *batchLimits // checked before a batch reaches the IPC reader
	batch    int64        // the number the next record batch will have
	// committing returns the done channel of a background commit (nil for
	// none); when it closes while the client is quiet, settle produces the
	// batches held back meanwhile, so they reach Kafka without waiting for
	// the client's next message.
	committing func() <-chan struct{}
	settle     func() error

	msg       *ipc.Message
	batchMeta []byte // app_metadata of the last record batch message
	held      []byte // app_metadata of a schema or dictionary message
	err       error  // the first error, kept unwrapped for classify
}

func (m *messageSource) Retain()  {}
func (m *messageSource) Release() { m.releaseMsg() }

func (m *messageSource) releaseMsg() {
	if m.msg != nil {
		m.msg.Release()
		m.msg = nil
	}
}

func (m *messageSource) fail(err error) (*ipc.Message, error) {
	if m.err == nil {
		m.err = err
	}
	return nil, err
}

// flushHeld handles held-back metadata as a marker of its own.
func (m *messageSource) flushHeld() error {
	if held := m.held; held != nil {
		m.held = nil
		return m.onMarker(held)
	}
	return nil
}

// Message implements ipc.MessageReader.
func (m *messageSource) Message() (*ipc.Message, error) {
	m.releaseMsg()
	for {
		fd := m.first
		m.first = nil
		if fd == nil {
			var wake <-chan struct{}
			if m.committing != nil {
				wake = m.committing()
			}
			var err error
			var woke bool
			if fd, woke, err = m.recv.nextOrWake(m.ctx, wake); woke {
				if err := m.settle(); err != nil {
					return m.fail(err)
				}
				continue
			} else if err != nil {
				if errors.Is(err, io.EOF) {
					if ferr := m.flushHeld(); ferr != nil {
						return m.fail(ferr)
					}
					return nil, io.EOF
				}
				return m.fail(err)
			}
		}
		if len(fd.DataHeader) == 0 {
			if err := m.flushHeld(); err != nil {
				return m.fail(err)
			}
			if len(fd.AppMetadata) > 0 {
				if err := m.onMarker(fd.AppMetadata); err != nil {
					return m.fail(err)
				}
			}
			continue
		}
		h, err := ipcheader.Read(fd.DataHeader, fd.DataBody)
		if err != nil {
			return m.fail(badStream("%v", err))
		}
		if h.Kind == ipcheader.KindRecordBatch || h.Kind == ipcheader.KindDictionaryBatch {
			if err := m.limits.check(h, m.batch); err != nil {
				return m.fail(err)
			}
			if h.Kind == ipcheader.KindRecordBatch {
				m.batch++
			}
		}
		msg, err := newIPCMessage(fd)
		if err != nil {
			return m.fail(err)
		}
		if msg.Type() == ipc.MessageRecordBatch {
			if m.held != nil && !bytes.Equal(m.held, fd.AppMetadata) {
				if err := m.flushHeld(); err != nil {
					msg.Release()
					return m.fail(err)
				}
			}
			m.held = nil
			m.batchMeta = fd.AppMetadata
		} else if len(fd.AppMetadata) > 0 && !bytes.Equal(m.held, fd.AppMetadata) {
			if err := m.flushHeld(); err != nil {
				msg.Release()
				return m.fail(err)
			}
			m.held = fd.AppMetadata
		}
		m.msg = msg
		return msg, nil
	}
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
