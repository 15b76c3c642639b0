package flightsink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"

	"github.com/flightsink/flightsink/internal/metrics"
	"github.com/flightsink/flightsink/kafka"
)

// stream is one DoPut: it reads FlightData, produces one record per row,
// and turns checkpoint markers into durable, acknowledged units.
type stream struct {
	srv    *Server
	ctx    context.Context
	cancel context.CancelCauseFunc // ends ctx: a background commit's failure ends the stream
	grpc   flight.FlightService_DoPutServer
	log    zerolog.Logger
	acks   *acker

	desc     *Descriptor
	delivery Delivery
	plan     *kafka.Plan
	writer   kafka.Writer

	rows           int64 // rows read from the client so far (the next row's stream number)
	batches        int64 // record batches read so far
	durableRows    int64 // rows Kafka made durable
	ackedRows      int64 // durableRows when the previous checkpoint ack was queued
	lastCheckpoint int64 // the newest durable checkpoint number, 0 for none
	seenCheckpoint int64 // the newest checkpoint number received
	// A named writer's stored progress when the stream opened: its
	// checkpoints continue from there and its committed_rows count on.
	resumedCheckpoint int64
	resumedRows       int64
	discardedRows     int64        // tail aborted at a clean close with commit_on_close false
	txnStart          time.Time    // when the open transaction got its first row
	ingest            *ingestState // set for a Flight SQL bulk ingest
	principal         *Principal
	opened            bool // counted in the open-streams gauge

	// An exactly-once checkpoint commits while the read loop goes on: the
	// batches read meanwhile are encoded and held (within
	// kafka.max_buffered_bytes, together with what is still unacknowledged)
	// until the commit is done, then produced into the next transaction.
	pending   *pendingCommit
	held      []*kafka.Records
	heldBytes int
}

// pendingCommit is a checkpoint being committed in the background.
type pendingCommit struct {
	n    int64 // checkpoint number
	rows int64 // the stream's rows at the marker: what the commit makes durable
	done chan struct{}
	err  error // set before done is closed
}

// kind is the stream's metrics label.
func (st *stream) kind() string {
	if st.ingest != nil {
		return metrics.KindIngest
	}
	return metrics.KindDoPut
}

// reportOutcome counts the ended stream by its outcome.
func (st *stream) reportOutcome(err error) {
	outcome := metrics.OutcomeOK
	if err != nil {
		outcome = string(classify(err).Reason)
	}
	if st.opened {
		st.srv.metrics.StreamClosed(string(st.delivery), st.kind(), outcome)
	} else {
		st.srv.metrics.StreamRejected(string(st.delivery), st.kind(), outcome)
	}
}

// run executes the stream; every exit path leaves nothing open.
func (st *stream) run() (err error) {
	recv := startReceiver(st.grpc, st.srv.cfg.IdleTimeout)
	defer recv.stop()
	// A failed stream still learns how its last checkpoint ended, so the
	// error says what is durable and nothing else uses the writer meanwhile.
	defer st.settleAfterFailure()
	defer func() {
		if err != nil && st.ctx.Err() != nil {
			err = recv.explain(st.ctx, err)
		}
	}()

	first, err := recv.next(st.ctx)
	if errors.Is(err, io.EOF) {
		return badStream("the stream ended before its first message; send the descriptor and schema first")
	}
	if err != nil {
		return err
	}
	ingest, err := ingestCommand(first.FlightDescriptor)
	if err != nil {
		return err
	}
	if ingest != nil {
		st.ingest = &ingestState{}
		st.desc, err = st.ingestDescriptor(ingest)
	} else {
		st.desc, err = ParseDescriptor(first.FlightDescriptor)
	}
	if err != nil {
		return err
	}
	st.log = st.log.With().Str("topic", st.desc.Topic).Logger()
	st.delivery = st.desc.Delivery
	if st.delivery == "" {
		st.delivery = st.srv.cfg.DefaultDelivery
	}
	if st.desc.WriterID != "" {
		st.log = st.log.With().Str("writer_id", st.desc.WriterID).Logger()
		if st.delivery != ExactlyOnce {
			return badDescriptor(`cmd: key "writer_id" requires "delivery":"exactly_once" (an at-least-once stream cannot be resumed)`)
		}
	}
	if err := st.srv.authorize(st.principal, st.desc.Topic, st.delivery); err != nil {
		return err
	}
	if len(first.DataHeader) == 0 {
		return badStream("the first message carries no schema (data_header is empty); the schema must come with the descriptor")
	}
	var topic kafka.TopicInfo
	if st.ingest != nil {
		topic, err = st.ingestTopic(ingest)
	} else {
		topic, err = st.srv.sink.Topic(st.ctx, st.desc.Topic)
	}
	if err != nil {
		return err
	}

	cfg := st.srv.cfg
	limits := &batchLimits{maxRows: cfg.MaxBatchRows, maxBytes: cfg.MaxBatchBytes}
	src := &messageSource{ctx: st.ctx, recv: recv, first: first, onMarker: st.onMarker, limits: limits,
		committing: st.committing, settle: st.settle}
	// Decoding holds the batch being read and the stream's dictionaries.
	mem := newBoundedAllocator(st.srv.mem, 2*cfg.MaxBatchBytes)
	reader, err := ipc.NewReaderFromMessageReader(src, ipc.WithAllocator(mem))
	if err != nil {
		if src.err != nil {
			return src.err
		}
		return badStream("reading the schema: %v", err)
	}
	defer reader.Release()
	limits.schema = reader.Schema()
	if st.plan, err = kafka.NewPlan(reader.Schema(), st.desc.recordOptions(), topic, st.register()); err != nil {
		return planError(err)
	}
	buffered := st.srv.sink.Config().MaxBufferedBytes
	st.plan.UsePool(kafka.NewRecordPool(buffered / 8))
	st.plan.SetChunkBytes(min(max(buffered/8, 1<<20), 16<<20))

	if err := st.openWriter(); err != nil {
		return err
	}
	st.srv.metrics.StreamOpened(string(st.delivery), st.kind())
	st.opened = true
	if st.ingest == nil {
		st.acks.Ready(st.readyMessage())
	}
	ev := st.log.Info()
	if schema := st.plan.AvroSchema(); schema != "" && !st.plan.Registered() {
		ev = ev.RawJSON("avro_schema", []byte(schema)) // bare datums: how a consumer gets the schema
	}
	ev.Bool("flight_sql_ingest", st.ingest != nil).Str("delivery", string(st.delivery)).Int64("resumed_checkpoint", st.resumedCheckpoint).
		Int64("resumed_rows", st.resumedRows).Msg("stream open")

	for reader.Next() {
		// A marker on a batch is checked before the batch is produced (a bad
		// marker or an abort rejects it) and takes effect after.
		var checkpoint int64
		if meta := src.batchMeta; len(meta) > 0 {
			src.batchMeta = nil
			if checkpoint, err = st.parseMarker(meta); err != nil {
				return err
			}
		}
		unit := st.seenCheckpoint + 1 // the checkpoint these rows will belong to
		if checkpoint > 0 {
			unit = checkpoint
		}
		if err := st.produce(reader.RecordBatch(), unit); err != nil {
			return err
		}
		if checkpoint == 0 && st.ingest != nil {
			checkpoint = st.ingestCheckpoint()
		}
		if checkpoint > 0 {
			if err := st.startCheckpoint(checkpoint); err != nil {
				return err
			}
		}
	}
	if src.err != nil {
		return src.err
	}
	if err := reader.Err(); err != nil {
		var fe *Error
		if errors.As(err, &fe) { // the bounded allocator's refusal
			return fe
		}
		return badStream("%v", err)
	}
	return st.finish()
}

// produce turns a batch into records and hands them to the writer, one
// chunk (plan.chunkBytes) at a time, so what a batch expands into never has
// to fit in memory at once. A bad row rejects its batch: an exactly-once
// stream then fails and its transaction, with any chunk of the batch
// already produced, is aborted; an at-least-once batch of more than one
// chunk is checked whole (encoded once without producing) before any of it
// is produced, so nothing of a rejected batch reaches Kafka.
func (st *stream) produce(rec arrow.RecordBatch, unit int64) error {
	size := batchBytes(rec)
	st.srv.metrics.BatchIn(rec.NumRows(), size)
	if size > st.srv.cfg.MaxBatchBytes {
		return newError(codes.ResourceExhausted, ReasonBatchTooLarge,
			"record batch %d is %d bytes decoded, over flight.max_batch_bytes (%d); send smaller batches",
			st.batches, size, st.srv.cfg.MaxBatchBytes)
	}
	if err := st.checkTransactionLimits(rec.NumRows()); err != nil {
		return err
	}
	st.batches++
	batch := st.batches - 1
	if err := st.plan.Bind(rec); err != nil {
		return badStream("record batch %d does not match the stream's schema: %v", batch, err)
	}
	if err := st.resolveTopics(batch); err != nil {
		return err
	}
	rows, now := int(rec.NumRows()), time.Now()
	first, next, err := st.plan.Encode(rows, 0, st.rows, unit, now)
	if err != nil {
		return st.rowError(batch, err)
	}
	if next < rows && st.delivery != ExactlyOnce {
		// Check the rest first, reusing one chunk's memory.
		for from := next; from < rows; {
			var chunk *kafka.Records
			if chunk, from, err = st.plan.Encode(rows, from, st.rows, unit, now); err != nil {
				return st.rowError(batch, err)
			}
			chunk.Recycle()
		}
	}
	for from := next; ; {
		if err := st.emit(first); err != nil {
			return err
		}
		if from >= rows {
			break
		}
		if first, from, err = st.plan.Encode(rows, from, st.rows, unit, now); err != nil {
			return st.rowError(batch, err)
		}
	}
	st.rows += int64(rows)
	return nil
}

// emit produces one chunk of records, or holds it while a background
// commit runs and the producer's budget has room (produced into the next
// transaction once the commit is done).
func (st *stream) emit(recs *kafka.Records) error {
	if p := st.pending; p != nil {
		select {
		case <-p.done:
		default:
			// The commit is still running: hold the batch while the
			// producer's budget has room for it.
			size := recs.Size()
			if pending, limit := st.writer.Backlog(); pending+st.heldBytes+size <= limit || len(st.held) == 0 && pending == 0 {
				st.held = append(st.held, recs)
				st.heldBytes += size
				return nil
			}
		}
		if err := st.settle(); err != nil {
			return err
		}
	}
	return st.send(recs)
}

// send hands a batch's records to the writer.
func (st *stream) send(recs *kafka.Records) error {
	n, bytes := recs.Len(), recs.Bytes() // recs may be recycled once handed over
	if err := st.writer.Produce(st.ctx, recs); err != nil {
		return err
	}
	st.srv.metrics.RecordsProduced(st.desc.Topic, int64(n), int64(bytes))
	return nil
}

// startCheckpoint makes everything read so far durable. An exactly-once
// checkpoint commits in the background (one at a time): its ack is sent as
// soon as the commit is done, while the read loop goes on reading and
// encoding; an at-least-once checkpoint waits for the acknowledgements.
func (st *stream) startCheckpoint(n int64) error {
	if err := st.settle(); err != nil {
		return err
	}
	if st.delivery != ExactlyOnce {
		return st.checkpoint(n)
	}
	p := &pendingCommit{n: n, rows: st.rows, done: make(chan struct{})}
	progress, w, began := st.progress(n), st.writer, time.Now()
	ackRows := st.rows - st.ackedRows
	st.ackedRows = st.rows
	st.pending = p
	go func() {
		defer close(p.done)
		if p.err = w.Checkpoint(st.ctx, progress); p.err != nil {
			// The loop may be waiting for a client that waits for this
			// ack: end the stream now, with this error as the cause.
			st.cancel(p.err)
			return
		}
		st.srv.metrics.CheckpointDurable(string(st.delivery), time.Since(began))
		if st.ingest == nil {
			// Now, not when the loop next looks: it may be waiting for
			// the client's next batch, and the client for this ack.
			st.acks.Checkpoint(n, ackRows, p.rows)
		}
	}()
	return nil
}

// settle waits for the background commit, if any, takes its outcome and
// produces the batches held meanwhile into the new transaction.
func (st *stream) settle() error {
	p := st.pending
	if p == nil {
		return nil
	}
	<-p.done
	st.pending = nil
	if p.err != nil {
		st.held, st.heldBytes = nil, 0
		return p.err
	}
	st.durableRows = p.rows
	st.lastCheckpoint = p.n
	st.txnStart = time.Time{}
	held := st.held
	st.held, st.heldBytes = nil, 0
	for _, recs := range held {
		if err := st.send(recs); err != nil {
			return err
		}
	}
	return nil
}

// committing returns the done channel of the background commit, if any.
func (st *stream) committing() <-chan struct{} {
	if st.pending == nil {
		return nil
	}
	return st.pending.done
}

// settleAfterFailure waits for a background commit of a stream that failed
// for another reason, so its error reports the durable state and the
// writer is closed only once the commit is over.
func (st *stream) settleAfterFailure() {
	if p := st.pending; p != nil {
		<-p.done
		st.pending = nil
		st.held, st.heldBytes = nil, 0
		if p.err == nil {
			st.durableRows, st.lastCheckpoint = p.rows, p.n
		}
	}
}

// onMarker handles a marker that travels without a batch.
func (st *stream) onMarker(meta []byte) error {
	n, err := st.parseMarker(meta)
	if err != nil {
		return err
	}
	return st.startCheckpoint(n)
}

// parseMarker validates a marker: it returns the checkpoint number, or the
// error that ends the stream (an abort, a malformed or stale marker).
// Checkpoints increase; a named writer's are consecutive, continuing from
// its stored progress.
func (st *stream) parseMarker(meta []byte) (int64, error) {
	if st.ingest != nil {
		return 0, badMetadata("a Flight SQL ingest takes no app_metadata markers; it commits when the ingest completes")
	}
	m, err := ParseMarker(meta)
	if err != nil {
		return 0, err
	}
	if m.IsAbort {
		return 0, newError(codes.Aborted, ReasonClientAbort, "client aborted the stream: %q", m.Abort)
	}
	if id := st.desc.WriterID; id != "" {
		switch {
		case m.Checkpoint <= st.resumedCheckpoint:
			return 0, newError(codes.FailedPrecondition, ReasonStaleCheckpoint,
				"checkpoint %d of writer %s is already committed (last committed: %d); resume with checkpoint %d",
				m.Checkpoint, id, st.resumedCheckpoint, st.seenCheckpoint+1)
		case m.Checkpoint != st.seenCheckpoint+1:
			return 0, newError(codes.FailedPrecondition, ReasonCheckpointGap,
				"expected checkpoint %d of writer %s, got %d; a named writer's checkpoints are consecutive",
				st.seenCheckpoint+1, id, m.Checkpoint)
		}
	} else if m.Checkpoint <= st.seenCheckpoint {
		return 0, badMetadata("checkpoint %d is not greater than the previous checkpoint %d; checkpoint numbers must increase", m.Checkpoint, st.seenCheckpoint)
	}
	st.seenCheckpoint = m.Checkpoint
	return m.Checkpoint, nil
}

// checkpoint makes everything read so far durable and queues its ack.
func (st *stream) checkpoint(n int64) error {
	began := time.Now()
	if err := st.writer.Checkpoint(st.ctx, st.progress(n)); err != nil {
		return err
	}
	st.srv.metrics.CheckpointDurable(string(st.delivery), time.Since(began))
	st.durable(n)
	if st.ingest == nil {
		st.acks.Checkpoint(n, st.durableRows-st.ackedRows, st.durableRows)
	}
	st.ackedRows = st.durableRows
	return nil
}

// durable records that every row read so far is durable.
func (st *stream) durable(checkpoint int64) {
	st.durableRows = st.rows
	st.txnStart = time.Time{}
	if checkpoint > 0 {
		st.lastCheckpoint = checkpoint
	}
}

// progress is what a named writer stores when checkpoint n commits.
func (st *stream) progress(n int64) kafka.Progress {
	return kafka.Progress{Checkpoint: n, CommittedRows: st.resumedRows + st.rows}
}

// finish ends a stream the client closed cleanly: the tail after the last
// checkpoint is made durable (committed), or, for an exactly-once stream
// with commit_on_close false, aborted. A named writer's tail commit is
// numbered as its next checkpoint, so a resume never writes it twice.
func (st *stream) finish() error {
	if err := st.settle(); err != nil {
		return err
	}
	w := st.writer
	st.writer = nil
	tail := st.rows - st.durableRows
	var err error
	switch {
	case st.delivery == ExactlyOnce && !st.desc.CommitOnClose:
		err = w.Close(st.ctx, false, kafka.Progress{})
		st.discardedRows = tail
	case st.desc.WriterID != "" && tail > 0:
		n := st.seenCheckpoint + 1
		if err = w.Close(st.ctx, true, st.progress(n)); err == nil {
			st.seenCheckpoint = n
			st.durable(n)
		}
	case st.desc.WriterID != "":
		err = w.Close(st.ctx, false, kafka.Progress{}) // nothing to commit
	default:
		if err = w.Close(st.ctx, true, kafka.Progress{}); err == nil {
			st.durable(0)
		}
	}
	if err != nil {
		return err
	}
	done := map[string]any{"type": "done", "total_rows": st.durableRows, "last_checkpoint": nullable(st.lastCheckpoint)}
	if st.delivery == ExactlyOnce {
		done["discarded_rows"] = st.discardedRows
		if st.desc.WriterID != "" {
			done["committed_rows"] = st.resumedRows + st.durableRows
		}
	}
	if st.ingest != nil {
		st.acks.Done(st.ingestResult())
		return nil
	}
	b, _ := json.Marshal(done)
	st.acks.Done(b)
	return nil
}

// abandon ends the writer of a failed stream, on a context of its own: the
// stream's may be canceled already.
func (st *stream) abandon() {
	if st.writer == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.writer.Close(ctx, false, kafka.Progress{}); err != nil {
		st.log.Warn().Err(err).Msg("closing the writer of a failed stream")
	}
	st.writer = nil
}

// openWriter opens the stream's Kafka writer: the shared idempotent
// producer, or a transactional one (for a named writer: fenced and with its
// stored progress).
func (st *stream) openWriter() error {
	sink := st.srv.sink
	if st.delivery == AtLeastOnce {
		st.writer = sink.OpenAtLeastOnce()
		return nil
	}
	writer := ""
	if st.desc.WriterID != "" {
		writer = st.principal.scopedWriter(st.desc.WriterID)
	}
	opened, err := sink.OpenExactlyOnce(st.ctx, st.desc.Topic, writer)
	if err != nil {
		return err
	}
	st.writer = opened.Writer
	if opened.HasProgress {
		p := opened.Progress
		if p.Topic != st.desc.Topic {
			return newError(codes.FailedPrecondition, ReasonWriterTopic,
				"writer %s writes to topic %q (last checkpoint %d); it cannot be reopened on topic %q: use another writer_id",
				st.desc.WriterID, p.Topic, p.Checkpoint, st.desc.Topic)
		}
		st.resumedCheckpoint, st.resumedRows = p.Checkpoint, p.CommittedRows
		st.seenCheckpoint = p.Checkpoint
	}
	return nil
}

func (st *stream) readyMessage() []byte {
	var writer any
	if st.desc.WriterID != "" {
		writer = st.desc.WriterID
	}
	b, _ := json.Marshal(map[string]any{
		"type": "ready", "protocol": ProtocolVersion, "delivery": st.delivery,
		"writer_id": writer, "last_checkpoint": nullable(st.resumedCheckpoint), "committed_rows": st.resumedRows,
	})
	return b
}

// suffix is appended to every error message: what is durable, so a client
// knows where it stands without another round trip.
func (st *stream) suffix() string {
	return fmt.Sprintf(" [durable_checkpoint=%d durable_rows=%d]", st.lastCheckpoint, st.durableRows)
}

func nullable(n int64) any {
	if n == 0 {
		return nil
	}
	return n
}

func msTime(ms int64) time.Time { return time.UnixMilli(ms) }

// batchBytes is the decoded size of a record batch: every buffer of every
// column, children and dictionaries included.
func batchBytes(rec arrow.RecordBatch) int64 {
	var n int64
	for _, col := range rec.Columns() {
		n += dataBytes(col.Data())
	}
	return n
}

func dataBytes(d arrow.ArrayData) int64 {
	var n int64
	for _, b := range d.Buffers() {
		if b != nil {
			n += int64(b.Len())
		}
	}
	for _, c := range d.Children() {
		n += dataBytes(c)
	}
	if d.DataType().ID() == arrow.DICTIONARY { // Dictionary() is a typed nil otherwise
		n += dataBytes(d.Dictionary())
	}
	return n
}

// lookupTopic checks a topic named by topic_field: the principal may write
// to it, and it exists (or is created when kafka.create_topics is on).
func (st *stream) lookupTopic(topic string) (kafka.TopicInfo, error) {
	if err := ValidateTopicName(topic); err != nil {
		return kafka.TopicInfo{}, newError(codes.InvalidArgument, ReasonBadRow, "%v", err)
	}
	if err := st.srv.authorize(st.principal, topic, st.delivery); err != nil {
		return kafka.TopicInfo{}, err
	}
	return st.srv.sink.Topic(st.ctx, topic)
}

// register is the plan's schema registration, nil without a registry: a
// refused schema is FailedPrecondition quoting the registry, before any
// row is written.
func (st *stream) register() kafka.RegisterFunc {
	reg := st.srv.sink.Registry()
	if reg == nil {
		return nil
	}
	return func(subject, schema string) (int, error) {
		id, err := reg.Register(st.ctx, subject, schema)
		if errors.Is(err, kafka.ErrSchemaRejected) {
			return 0, &Error{Code: codes.FailedPrecondition, Reason: ReasonSchemaRejected, Msg: err.Error(), Err: err}
		}
		return id, err
	}
}

// resolveTopics checks and looks up, once per stream, every topic_field
// topic the bound batch names that the plan does not know yet, before any
// row is encoded; an error names the first row with that topic.
func (st *stream) resolveTopics(batch int64) error {
	unknown, err := st.plan.UnknownTopics()
	if err != nil {
		return st.rowError(batch, err)
	}
	for _, u := range unknown {
		info, err := st.lookupTopic(u.Name)
		if err != nil {
			if errors.Is(err, kafka.ErrUnavailable) {
				return err
			}
			e := classify(err)
			return &Error{Code: e.Code, Reason: e.Reason, Err: err, Msg: fmt.Sprintf(
				"stream row %d (batch %d, row %d): topic_field: %s; no row of this batch was written", st.rows+int64(u.Row), batch, u.Row, e.Msg)}
		}
		st.plan.AddTopic(u.Name, info)
	}
	return nil
}

// rowError names the row of a *kafka.RowError by its stream row number;
// its whole batch is rejected.
func (st *stream) rowError(batch int64, err error) error {
	var re *kafka.RowError
	if !errors.As(err, &re) {
		return err
	}
	return &Error{Code: codes.InvalidArgument, Reason: ReasonBadRow, Err: err, Msg: fmt.Sprintf(
		"stream row %d (batch %d, row %d): %s; no row of this batch was written", st.rows+int64(re.Row), batch, re.Row, re.Problem)}
}

// planError maps what kafka.NewPlan refuses to the stream's statuses.
func planError(err error) error {
	var oe *kafka.OptionError
	var se *kafka.SchemaError
	switch {
	case errors.As(err, &oe):
		return badDescriptor(oe.Msg)
	case errors.As(err, &se):
		return &Error{Code: codes.InvalidArgument, Reason: ReasonBadSchema, Msg: se.Msg, Err: err}
	}
	return err
}
