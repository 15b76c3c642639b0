package flightsink

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"google.golang.org/grpc/codes"

	"github.com/flightsink/flightsink/kafka/sinkapi"
)

// What a stream needs from Kafka before and around its loop: its writer,
// the plan's schema registration and topic_field look-ups, and the mapping
// of the plan's typed errors to statuses.

// openWriter opens the stream's Kafka writer: the shared idempotent
// producer, or a transactional one (for a named writer: fenced and with its
// stored progress).
func (st *stream) openWriter() error {
	sink := st.srv.sink
	st.ckpt = checkpointer{ctx: st.ctx, cancel: st.cancel,
		took:     func(d time.Duration) { st.srv.metrics.CheckpointDurable(string(st.delivery), d) },
		produced: func(n, bytes int) { st.srv.metrics.RecordsProduced(st.desc.Topic, int64(n), int64(bytes)) }}
	if st.ingest == nil {
		st.ckpt.ack = st.acks.Checkpoint
	}
	st.ckpt.badRows = st.desc.OnBadRow != sinkapi.BadRowFail
	st.ckpt.offsets = st.desc.ReportOffsets
	if st.delivery == AtLeastOnce {
		st.ckpt.w = sink.OpenAtLeastOnce()
		if st.desc.ReportOffsets {
			st.ckpt.w.ReportOffsets()
		}
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
	st.ckpt.w = opened.Writer
	if st.desc.ReportOffsets {
		st.ckpt.w.ReportOffsets()
	}
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
func (st *stream) lookupTopic(topic string) (sinkapi.TopicInfo, error) {
	if err := ValidateTopicName(topic); err != nil {
		return sinkapi.TopicInfo{}, newError(codes.InvalidArgument, ReasonBadRow, "%v", err)
	}
	if err := st.srv.authorize(st.principal, topic, st.delivery); err != nil {
		return sinkapi.TopicInfo{}, err
	}
	return st.srv.sink.Topic(st.ctx, topic)
}

// register is the plan's schema registration, nil without a registry: a
// refused schema is FailedPrecondition quoting the registry, before any
// row is written.
func (st *stream) register() sinkapi.RegisterFunc {
	reg := st.srv.sink.SchemaRegistry()
	if reg == nil {
		return nil
	}
	return func(subject string, schema sinkapi.Schema) (int, error) {
		var id int
		var err error
		if subject != "" && subject == st.subjectTable {
			id, err = reg.Match(st.ctx, subject, schema) // a table its subject declares: write in that schema
		} else {
			id, err = reg.Register(st.ctx, subject, schema)
		}
		if errors.Is(err, sinkapi.ErrSchemaRejected) {
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
			if errors.Is(err, sinkapi.ErrUnavailable) {
				return err
			}
			e := classify(err)
			if ri, _ := reasonInfo(e.Reason); st.desc.OnBadRow != sinkapi.BadRowFail && !ri.Retryable {
				st.plan.RejectTopic(u.Name, "topic_field: "+e.Msg) // its rows are bad rows
				continue
			}
			return &Error{Code: e.Code, Reason: e.Reason, Err: err, Msg: fmt.Sprintf(
				"stream row %d (batch %d, row %d): topic_field: %s; no row of this batch was written", st.rows+int64(u.Row), batch, u.Row, e.Msg)}
		}
		st.plan.AddTopic(u.Name, info)
	}
	return nil
}

// rowError names the row of a *sinkapi.RowError by its stream row number;
// its whole batch is rejected.
func (st *stream) rowError(batch int64, err error) error {
	var re *sinkapi.RowError
	if !errors.As(err, &re) {
		return err
	}
	return &Error{Code: codes.InvalidArgument, Reason: ReasonBadRow, Err: err, Msg: fmt.Sprintf(
		"stream row %d (batch %d, row %d): %s; no row of this batch was written", st.rows+int64(re.Row), batch, re.Row, re.Problem)}
}

// planError maps what kafka.NewPlan refuses to the stream's statuses.
func planError(err error) error {
	var oe *sinkapi.OptionError
	var se *sinkapi.SchemaError
	switch {
	case errors.As(err, &oe):
		return badDescriptor(oe.Msg)
	case errors.As(err, &se):
		return &Error{Code: codes.InvalidArgument, Reason: ReasonBadSchema, Msg: se.Msg, Err: err}
	}
	return err
}
