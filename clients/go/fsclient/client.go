// Package fsclient is a small Go client for flightsink: it opens DoPut
// streams with the descriptor flightsink understands, numbers checkpoints,
// waits for their acknowledgements, and turns failures into *Error values
// carrying the gRPC code and the server's flightsink-reason, so callers can
// decide whether to resume.
//
//	c, _ := fsclient.Dial("127.0.0.1:8815")
//	w, _ := c.Open(ctx, fsclient.Descriptor{Topic: "orders", WriterID: "orders-loader"}, schema)
//	skip := w.Ready().CommittedRows // rows already in Kafka from an earlier run
//	w.Write(batch)
//	w.Checkpoint(ctx)               // committed when it returns
//	w.Close(ctx)
//
// Checkpoint waits for its ack. A loader that keeps its input until it is
// durable can pipeline instead: MarkCheckpoint returns at once, the server
// commits while more batches stream in, and Acked / WaitCheckpoint tell
// what is durable.
package fsclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Descriptor says where and how a stream writes; see docs/protocol.md.
type Descriptor struct {
	Topic          string `json:"topic"`
	KeyField       string `json:"key_field,omitempty"`
	TimestampField string `json:"timestamp_field,omitempty"`
	// Delivery is "exactly_once" or "at_least_once"; empty for the server's default.
	Delivery string `json:"delivery,omitempty"`
	// WriterID names a resumable exactly-once writer.
	WriterID string `json:"writer_id,omitempty"`
	// CommitOnClose false makes a clean close abort the tail after the last
	// checkpoint instead of committing it.
	CommitOnClose *bool `json:"commit_on_close,omitempty"`

	// What each record looks like (the README's "Record formats and shape";
	// empty or nil for the server's default).
	Format              string            `json:"format,omitempty"` // json, avro, raw_string, raw_bytes
	JSONTimestampFormat string            `json:"json.timestamp_format,omitempty"`
	JSONDecimal         string            `json:"json.decimal,omitempty"`
	JSONIncludeSchema   *bool             `json:"json.include_schema,omitempty"`
	ValueFields         []string          `json:"value_fields,omitempty"`
	ExcludeFields       []string          `json:"exclude_fields,omitempty"`
	ValueField          string            `json:"value_field,omitempty"`
	Subject             string            `json:"subject,omitempty"`
	TombstoneField      string            `json:"tombstone_field,omitempty"`
	HeadersField        string            `json:"headers_field,omitempty"`
	Headers             map[string]string `json:"headers,omitempty"`
	ProvenanceHeaders   *bool             `json:"provenance_headers,omitempty"`
	PartitionField      string            `json:"partition_field,omitempty"`
	TopicField          string            `json:"topic_field,omitempty"`

	SubjectNameStrategy string   `json:"subject_name_strategy,omitempty"`
	KeyFormat           string   `json:"key_format,omitempty"`
	KeyFields           []string `json:"key_fields,omitempty"`

	// OnBadRow is what a row that cannot become a record does: "fail"
	// (the default: its batch is rejected), "skip", or "dead_letter" (the
	// row as JSON, with its error in headers, to DeadLetterTopic, default
	// <topic>.dlq).
	OnBadRow        string `json:"on_bad_row,omitempty"`
	DeadLetterTopic string `json:"dead_letter_topic,omitempty"`
	// MaxBadRows fails the stream past this many bad rows (>= 1) or this
	// fraction of the rows (< 1); 0: no cap.
	MaxBadRows float64 `json:"max_bad_rows,omitempty"`
	// ReportOffsets makes acks and done carry the offsets written.
	ReportOffsets bool `json:"report_offsets,omitempty"`

	// Options are more descriptor keys by their server names, passed
	// through as they are (keys newer than this client). A key also set by
	// a field above is an error.
	Options map[string]any `json:"-"`
}

// command is the CMD descriptor: the fields, then Options.
func (d Descriptor) command() ([]byte, error) {
	b, err := json.Marshal(d)
	if err != nil || len(d.Options) == 0 {
		return b, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for k, v := range d.Options {
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("fsclient: descriptor key %q is set both as a field and in Options", k)
		}
		m[k] = v
	}
	return json.Marshal(m)
}

// Ready is the server's first message on a stream.
type Ready struct {
	Delivery       string `json:"delivery"`
	WriterID       string `json:"writer_id"`
	LastCheckpoint int64  `json:"last_checkpoint"` // 0 when none
	CommittedRows  int64  `json:"committed_rows"`  // rows a named writer already committed
}

// Ack acknowledges a durable checkpoint.
type Ack struct {
	Checkpoint int64 `json:"checkpoint"`
	Rows       int64 `json:"rows"`
	TotalRows  int64 `json:"total_rows"`
	// Under OnBadRow skip or dead_letter: the rows among Rows left out.
	SkippedRows      int64 `json:"skipped_rows"`
	DeadLetteredRows int64 `json:"dead_lettered_rows"`
	// With ReportOffsets: the records written since the previous ack (a
	// pointer, so Ack stays comparable).
	Offsets *Offsets `json:"offsets,omitempty"`
}

// Offsets are the first and last offsets written, by topic and partition
// (the partition as decimal text, as JSON object keys are).
type Offsets map[string]map[string][2]int64

// Done is the server's last message after a clean close.
type Done struct {
	TotalRows      int64 `json:"total_rows"`
	LastCheckpoint int64 `json:"last_checkpoint"`
	CommittedRows  int64 `json:"committed_rows"`
	DiscardedRows  int64 `json:"discarded_rows"`
	// Under OnBadRow skip or dead_letter: the stream's rows left out.
	SkippedRows      int64 `json:"skipped_rows"`
	DeadLetteredRows int64 `json:"dead_lettered_rows"`
	// With ReportOffsets: the tail's records, since the last ack.
	Offsets *Offsets `json:"offsets,omitempty"`
}

// Error is a failed stream: the gRPC code, the server's machine-readable
// reason (the flightsink-reason trailer) and its message.
type Error struct {
	Code    codes.Code
	Reason  string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("flightsink: %v (%s): %s", e.Code, e.Reason, e.Message)
}

// Retryable says whether resuming the writer may succeed: the server or
// Kafka was unavailable (a broker restarting included), Kafka refused the
// server's own credentials (renewed without a restart), the commit outcome
// is unknown, the transaction timed out, every producer was busy, the
// stream went idle, or the connection was lost (no reason, Unavailable).
// Bad input, fencing, stale checkpoints and kafka_error are not retryable.
// The set is the server's table of reasons (docs/protocol.md); the server's
// tests check it. Back off between attempts long enough for a broker to
// restart (the Python client waits 1, 2, 4, 8, 16, then 30 s).
func (e *Error) Retryable() bool {
	switch e.Reason {
	case "kafka_unavailable", "kafka_auth_failed", "outcome_unknown", "shutdown", "txn_timeout", "too_many_streams", "idle_timeout":
		return true
	case "":
		return e.Code == codes.Unavailable
	}
	return false
}

// Client is a connection to a flightsink server.
type Client struct {
	conn *grpc.ClientConn
	fc   flight.FlightServiceClient
}

// Dial connects to addr (host:port) without TLS unless opts say otherwise.
func Dial(addr string, opts ...grpc.DialOption) (*Client, error) {
	opts = append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64 << 20)),
	}, opts...)
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn, fc: flight.NewFlightServiceClient(conn)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Default slicing of Writer.Write: a batch is sent in slices of at most
// this many rows and about this many bytes of Arrow buffers, well under the
// server's flight.max_batch_rows and flight.max_message_bytes defaults.
const (
	DefaultMaxBatchRows  = 1 << 20
	DefaultMaxBatchBytes = 16 << 20
)

// OpenOption configures a Writer.
type OpenOption func(*Writer)

// MaxBatchRows caps the rows of one message: Write slices longer batches.
// A run-end encoded or dictionary column is small in bytes but not in rows;
// keep it under the server's flight.max_batch_rows.
func MaxBatchRows(n int64) OpenOption { return func(w *Writer) { w.maxRows = max(n, 1) } }

// MaxBatchBytes caps the Arrow buffer bytes of one message (estimated per
// row from the batch): Write slices bigger batches. Keep it under the
// server's flight.max_message_bytes.
func MaxBatchBytes(n int64) OpenOption { return func(w *Writer) { w.maxBytes = max(n, 1) } }

// Writer is one open DoPut stream. It is not safe for concurrent use.
type Writer struct {
	maxRows, maxBytes int64 // Write's slicing
	stream            flight.FlightService_DoPutClient
	cancel            context.CancelFunc
	w                 *flight.Writer
	ready             Ready
	next              int64 // the next checkpoint number

	acks chan json.RawMessage // messages other than checkpoint acks
	mu   sync.Mutex
	err  error         // the stream's final error, once known
	last Ack           // the newest checkpoint ack
	wake chan struct{} // closed at the next checkpoint ack or the stream's end
	gone bool          // the receiving goroutine has ended
}

// Open starts a stream: it sends the descriptor with the schema and waits
// for the server's ready message.
func (c *Client) Open(ctx context.Context, d Descriptor, schema *arrow.Schema, opts ...OpenOption) (*Writer, error) {
	cmd, err := d.command()
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	stream, err := c.fc.DoPut(sctx)
	if err != nil {
		cancel()
		return nil, wrap(err, nil)
	}
	w := &Writer{stream: stream, cancel: cancel, acks: make(chan json.RawMessage, 64), wake: make(chan struct{}),
		maxRows: DefaultMaxBatchRows, maxBytes: DefaultMaxBatchBytes}
	for _, o := range opts {
		o(w)
	}
	w.w = flight.NewRecordWriter(stream, ipc.WithSchema(schema))
	w.w.SetFlightDescriptor(&flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: cmd})
	go w.readAcks()
	// arrow-go sends the schema with the first batch: a zero-row batch
	// brings it (and so the ready message) now.
	cols := make([]arrow.Array, schema.NumFields())
	for i, f := range schema.Fields() {
		cols[i] = array.MakeArrayOfNull(memory.DefaultAllocator, f.Type, 0)
	}
	empty := array.NewRecordBatch(schema, cols, 0)
	for _, c := range cols {
		c.Release()
	}
	werr := w.w.Write(empty)
	empty.Release()
	msg, err := w.nextAck(ctx, "ready")
	if err != nil {
		w.abandon()
		if werr != nil && !errors.Is(werr, io.EOF) && !isStatus(err) {
			return nil, werr
		}
		return nil, err
	}
	if err := json.Unmarshal(msg, &w.ready); err != nil {
		w.abandon()
		return nil, err
	}
	w.next = w.ready.LastCheckpoint + 1
	return w, nil
}

// Ready is what the server said when the stream opened: for a named
// writer, the committed checkpoint and rows to resume from.
func (w *Writer) Ready() Ready { return w.ready }

// Write sends a record batch, in slices of at most MaxBatchRows rows and
// about MaxBatchBytes bytes. A failed stream shows in the next Checkpoint
// or Close.
func (w *Writer) Write(rec arrow.RecordBatch) error {
	rows := rec.NumRows()
	step := min(rows, w.maxRows)
	if size := recordBytes(rec); rows > 0 && size > w.maxBytes {
		step = min(step, max(1, rows*w.maxBytes/size))
	}
	if step >= rows {
		return w.send(rec)
	}
	for off := int64(0); off < rows; off += step {
		part := rec.NewSlice(off, min(off+step, rows))
		err := w.send(part)
		part.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

// recordBytes is the size of rec's buffers, children and dictionaries
// included (a slice counts its whole buffers: an upper bound).
func recordBytes(rec arrow.RecordBatch) int64 {
	var n int64
	var data func(d arrow.ArrayData)
	data = func(d arrow.ArrayData) {
		for _, b := range d.Buffers() {
			if b != nil {
				n += int64(b.Len())
			}
		}
		for _, c := range d.Children() {
			data(c)
		}
		if d.DataType().ID() == arrow.DICTIONARY {
			data(d.Dictionary())
		}
	}
	for _, col := range rec.Columns() {
		data(col.Data())
	}
	return n
}

func (w *Writer) send(rec arrow.RecordBatch) error {
	if err := w.w.Write(rec); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// Checkpoint marks everything written so far as one unit and waits until
// the server has made it durable (committed it, in exactly-once mode).
func (w *Writer) Checkpoint(ctx context.Context) (Ack, error) {
	n, err := w.MarkCheckpoint()
	if err != nil {
		return Ack{}, err
	}
	return w.WaitCheckpoint(ctx, n)
}

// MarkCheckpoint marks everything written so far as checkpoint n and
// returns n without waiting: the server commits it while later batches
// stream in. Keep what checkpoint n covers until Acked reaches n (or
// WaitCheckpoint returns); after a failure, resume from the last ack.
func (w *Writer) MarkCheckpoint() (int64, error) {
	n := w.next
	w.next++
	b, _ := json.Marshal(map[string]int64{"checkpoint": n})
	if err := w.w.WriteMetadata(b); err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	return n, nil // io.EOF: the stream has failed; its error comes with the wait
}

// Acked returns the newest checkpoint ack received (zero before any).
// Acks may be coalesced: an ack for N says every checkpoint up to N is
// durable, and its Rows counts all of them.
func (w *Writer) Acked() Ack {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// WaitCheckpoint waits until checkpoint n is durable and returns the ack
// that says so, or the stream's error.
func (w *Writer) WaitCheckpoint(ctx context.Context, n int64) (Ack, error) {
	for {
		w.mu.Lock()
		last, wake, gone, err := w.last, w.wake, w.gone, w.err
		w.mu.Unlock()
		switch {
		case last.Checkpoint >= n:
			return last, nil
		case gone && err != nil:
			return Ack{}, err
		case gone:
			return Ack{}, fmt.Errorf("flightsink: the stream ended before checkpoint %d was acknowledged: %w", n, io.ErrUnexpectedEOF)
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return Ack{}, ctx.Err()
		}
	}
}

// Abort ends the stream on the client's request: in exactly-once mode the
// open transaction is aborted. Use it instead of Close after an error, or
// the tail would be committed.
func (w *Writer) Abort(ctx context.Context, reason string) error {
	b, _ := json.Marshal(map[string]string{"abort": reason})
	_ = w.w.WriteMetadata(b)
	_ = w.stream.CloseSend()
	for {
		if _, err := w.nextAck(ctx, ""); err != nil {
			var fe *Error
			if errors.As(err, &fe) && fe.Reason == "client_abort" {
				return nil
			}
			return err
		}
	}
}

// Close ends the stream cleanly and waits for the server's done message.
func (w *Writer) Close(ctx context.Context) (Done, error) {
	defer w.cancel()
	_ = w.w.Close()
	_ = w.stream.CloseSend()
	for {
		msg, err := w.nextAck(ctx, "done")
		if err != nil {
			return Done{}, err
		}
		var d struct {
			Done
			Type string `json:"type"`
		}
		if err := json.Unmarshal(msg, &d); err != nil {
			return Done{}, err
		}
		if d.Type == "done" {
			return d.Done, nil
		}
	}
}

// abandon cancels the stream without a clean end.
func (w *Writer) abandon() { w.cancel() }

// readAcks is the one goroutine that receives; it ends with the stream.
// Checkpoint acks update Acked; other messages go to nextAck.
func (w *Writer) readAcks() {
	defer close(w.acks)
	for {
		pr, err := w.stream.Recv()
		if err != nil {
			w.mu.Lock()
			if !errors.Is(err, io.EOF) {
				w.err = wrap(err, w.stream)
			}
			w.gone = true
			close(w.wake)
			w.mu.Unlock()
			return
		}
		var a struct {
			Type string `json:"type"`
			Ack
		}
		if json.Unmarshal(pr.AppMetadata, &a) == nil && a.Type == "checkpoint" {
			w.mu.Lock()
			if a.Checkpoint > w.last.Checkpoint {
				w.last = a.Ack
			}
			close(w.wake)
			w.wake = make(chan struct{})
			w.mu.Unlock()
			continue
		}
		w.acks <- pr.AppMetadata
	}
}

// nextAck returns the next message of type want (others are skipped, as
// the protocol asks), or the stream's error.
func (w *Writer) nextAck(ctx context.Context, want string) (json.RawMessage, error) {
	for {
		select {
		case msg, ok := <-w.acks:
			if !ok {
				w.mu.Lock()
				err := w.err
				w.mu.Unlock()
				if err == nil {
					err = io.ErrUnexpectedEOF
				}
				return nil, err
			}
			var head struct{ Type string }
			if json.Unmarshal(msg, &head) == nil && (want == "" || head.Type == want) {
				return msg, nil
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func wrap(err error, stream grpc.ClientStream) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	e := &Error{Code: st.Code(), Message: st.Message()}
	if stream != nil {
		if v := stream.Trailer().Get("flightsink-reason"); len(v) > 0 {
			e.Reason = v[0]
		}
	}
	return e
}

func isStatus(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
