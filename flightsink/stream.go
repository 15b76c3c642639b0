package flightsink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"

	"github.com/flightsink/flightsink/internal/metrics"
	"github.com/flightsink/flightsink/kafka/sinkapi"
)

// stream is one DoPut: an event loop (run) over what its eventSource
// reads, producing one record per row through its checkpointer, which
// turns checkpoint markers into durable, acknowledged units.
type stream struct {
	srv    *Server
	ctx    context.Context
	cancel context.CancelCauseFunc // ends ctx: a background commit's failure ends the stream
	grpc   flight.FlightService_DoPutServer
	log    zerolog.Logger
	acks   *acker

	desc     *Descriptor
	delivery Delivery
	plan     sinkapi.Plan
	ckpt     checkpointer
	ingest   *ingestState // a Flight SQL bulk ingest: no markers or acks, commits by its own policy
	bind     *sqlBind     // a prepared INSERT: batches of parameters become the table's rows
	// subjectTable is the Avro subject declaring the table a SQL INSERT
	// writes ("" for none): its schema is matched, not registered.
	subjectTable string

	rows           int64 // rows read from the client so far (the next row's stream number)
	batches        int64 // record batches read so far
	seenCheckpoint int64 // the newest checkpoint number received
	skipped        int64 // rows left out (on_bad_row skip)
	deadLettered   int64 // rows written to the dead-letter topic
	// A named writer's stored progress when the stream opened: its
	// checkpoints continue from there and its committed_rows count on.
	resumedCheckpoint int64
	resumedRows       int64
	discardedRows     int64     // tail aborted at a clean close with commit_on_close false
	txnStart          time.Time // when the open transaction got its first row
	principal         *Principal
	opened            bool // counted in the open-streams gauge
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

// run opens the stream and runs its loop. On failure the caller ends the
// writer (abandon): by then no commit is running (settleAfterFailure).
func (st *stream) run() (err error) {
	recv := startReceiver(st.grpc, st.srv.cfg.IdleTimeout)
	defer recv.stop()
	// A failed stream still learns how its last checkpoint ended, so the
	// error says what is durable and nothing else uses the writer meanwhile.
	defer st.ckpt.settleAfterFailure()
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
	if done, err := st.sqlUpdate(first, recv); done || err != nil {
		return err // a SQL statement answered on its own (sqlstatements.go)
	}
	ingest, err := ingestCommand(first.FlightDescriptor)
	if err != nil {
		return err
	}
	switch {
	case ingest != nil:
		st.ingest = &ingestState{}
		st.desc, err = st.ingestDescriptor(ingest)
	case st.desc == nil:
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
		if err := writerNeedsExactlyOnce(st.delivery); err != nil {
			return err // the server's default_delivery
		}
	}
	if err := st.srv.authorize(st.principal, st.desc.Topic, st.delivery); err != nil {
		return err
	}
	if len(first.DataHeader) == 0 {
		return badStream("the first message carries no schema (data_header is empty); the schema must come with the descriptor")
	}
	var topic sinkapi.TopicInfo
	if ingest != nil {
		topic, err = st.ingestTopic(ingest)
	} else {
		topic, err = st.srv.sink.Topic(st.ctx, st.desc.Topic)
	}
	if err != nil {
		return err
	}

	cfg := st.srv.cfg
	limits := &batchLimits{maxRows: cfg.MaxBatchRows, maxBytes: cfg.MaxBatchBytes}
	// Decoding holds the batch being read and the stream's dictionaries.
	src, err := newEventSource(recv, first, limits, newBoundedAllocator(st.srv.mem, 2*cfg.MaxBatchBytes))
	if err != nil {
		return err
	}
	defer src.Release()
	opts := st.desc.recordOptions()
	if st.desc.OnBadRow == sinkapi.BadRowDeadLetter {
		if opts.DeadLetter, err = st.lookupTopic(st.desc.DeadLetterTopic); err != nil {
			if e := classify(err); !errors.Is(err, sinkapi.ErrUnavailable) {
				return &Error{Code: e.Code, Reason: e.Reason, Err: err, Msg: "dead_letter_topic: " + e.Msg}
			}
			return err
		}
	}
	schema := src.Schema()
	if st.bind != nil {
		schema = st.bind.table.schema // bound parameters become the table's rows
	}
	if st.plan, err = st.srv.sink.NewPlan(schema, opts, topic, st.register()); err != nil {
		return planError(err)
	}

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
	if schema := st.plan.ProtoSchema(); schema != "" && !st.plan.Registered() {
		ev = ev.Str("proto_schema", schema)
	}
	ev.Bool("flight_sql_ingest", st.ingest != nil).Str("delivery", string(st.delivery)).Int64("resumed_checkpoint", st.resumedCheckpoint).
		Int64("resumed_rows", st.resumedRows).Msg("stream open")
	return st.loop(src)
}

// loop acts on the stream's events until the client ends it or a failure
// does.
func (st *stream) loop(src *eventSource) error {
	for {
		ev, err := src.next(st.ctx, st.ckpt.committing())
		if err != nil {
			return err
		}
		switch ev.kind {
		case evCommitted:
			if err := st.ckpt.settle(); err != nil {
				return err
			}
		case evMarker:
			n, err := st.parseMarker(ev.meta)
			if err != nil {
				return err
			}
			if err := st.checkpoint(n); err != nil {
				return err
			}
		case evBatch:
			// A marker on a batch is checked before the batch is produced
			// (a bad marker or an abort rejects it) and takes effect after.
			var n int64
			if len(ev.meta) > 0 {
				if n, err = st.parseMarker(ev.meta); err != nil {
					return err
				}
			}
			unit := st.seenCheckpoint + 1 // the checkpoint these rows will belong to
			if n > 0 {
				unit = n
			}
			if err := st.produce(ev.rec, unit); err != nil {
				return err
			}
			if n == 0 {
				n = st.policyCheckpoint()
			}
			if n > 0 {
				if err := st.checkpoint(n); err != nil {
					return err
				}
			}
		case evEnd:
			return st.finish()
		}
	}
}

// checkpoint makes everything read so far durable as checkpoint n, in
// the background: its ack is sent as soon as it is durable.
func (st *stream) checkpoint(n int64) error {
	return st.ckpt.start(n, counts{st.rows, st.skipped, st.deadLettered}, st.progress(n))
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

// progress is what a named writer stores when checkpoint n commits.
func (st *stream) progress(n int64) sinkapi.Progress {
	return sinkapi.Progress{Checkpoint: n, CommittedRows: st.resumedRows + st.rows}
}

// finish ends a stream the client closed cleanly: the tail after the last
// checkpoint is made durable (committed), or, for an exactly-once stream
// with commit_on_close false, aborted. A named writer's tail commit is
// numbered as its next checkpoint, so a resume never writes it twice.
func (st *stream) finish() error {
	if err := st.ckpt.settle(); err != nil {
		return err
	}
	tail := st.rows - st.ckpt.durableRows
	var err error
	switch {
	case st.delivery == ExactlyOnce && !st.desc.CommitOnClose:
		err = st.ckpt.close(false, 0, st.rows, sinkapi.Progress{})
		st.discardedRows = tail
	case st.desc.WriterID != "" && tail > 0:
		n := st.seenCheckpoint + 1
		if err = st.ckpt.close(true, n, st.rows, st.progress(n)); err == nil {
			st.seenCheckpoint = n
		}
	case st.desc.WriterID != "":
		err = st.ckpt.close(false, 0, st.rows, sinkapi.Progress{}) // nothing to commit
	default:
		err = st.ckpt.close(true, 0, st.rows, sinkapi.Progress{})
	}
	if err != nil {
		return err
	}
	if st.ingest != nil {
		st.acks.Done(st.ingestResult())
		return nil
	}
	done := map[string]any{"type": "done", "total_rows": st.ckpt.durableRows, "last_checkpoint": nullable(st.ckpt.lastCheckpoint)}
	if st.desc.OnBadRow != sinkapi.BadRowFail {
		done["skipped_rows"], done["dead_lettered_rows"] = st.skipped, st.deadLettered
	}
	if st.desc.ReportOffsets {
		offsets := st.ckpt.tailOffsets
		if offsets == nil {
			offsets = sinkapi.Offsets{}
		}
		done["offsets"] = offsets // the tail's, since the last checkpoint ack
	}
	if st.delivery == ExactlyOnce {
		done["discarded_rows"] = st.discardedRows
		if st.desc.WriterID != "" {
			done["committed_rows"] = st.resumedRows + st.ckpt.durableRows
		}
	}
	b, _ := json.Marshal(done)
	st.acks.Done(b)
	return nil
}

// abandon ends the writer of a failed stream.
func (st *stream) abandon() {
	if err := st.ckpt.abandon(); err != nil {
		st.log.Warn().Err(err).Msg("closing the writer of a failed stream")
	}
}

// suffix is appended to every error message: what is durable, so a client
// knows where it stands without another round trip.
func (st *stream) suffix() string {
	return fmt.Sprintf(" [durable_checkpoint=%d durable_rows=%d]", st.ckpt.lastCheckpoint, st.ckpt.durableRows)
}

func nullable(n int64) any {
	if n == 0 {
		return nil
	}
	return n
}
