// Package sinkapi is what the Flight service and the Kafka side share: the
// facts about a topic, a writer's progress, the record options of a
// stream, the typed errors a stream reports, and the interfaces of a
// writer, a record plan and its chunks. It imports no Kafka client, so the
// Flight service (package flightsink) depends on it alone and its tests can
// fake the Kafka side; package kafka implements it with franz-go.
package sinkapi

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flightsink/flightsink/kafka/encode"
)

// TopicInfo is what a stream needs to know about its topic.
type TopicInfo struct {
	Topic      string
	Partitions int
	// MaxMessageBytes is the topic's max.message.bytes: the largest record
	// batch the broker accepts for it. Rows whose record would exceed it are
	// rejected before they are produced.
	MaxMessageBytes int32
	// Compacted is true when cleanup.policy includes compact: the broker
	// rejects records without a key, failing the whole producer batch.
	Compacted bool
	// CreateTime is true when message.timestamp.type is CreateTime: the
	// broker then rejects timestamps outside the window below, failing the
	// whole producer batch, so rows are checked first.
	CreateTime bool
	// TimestampBeforeMax and TimestampAfterMax bound how far a record
	// timestamp may lie before or after the broker's clock
	// (message.timestamp.before.max.ms / after.max.ms; Kafka 4's default
	// after-limit is one hour).
	TimestampBeforeMax, TimestampAfterMax time.Duration
}

// Progress is a named writer's durable position: written to the compacted
// progress topic inside the same transaction as the rows it counts, so it is
// committed or aborted with them, and never expires.
type Progress struct {
	WriterID      string    `json:"writer_id"`
	Topic         string    `json:"topic"`
	Checkpoint    int64     `json:"checkpoint"`
	CommittedRows int64     `json:"committed_rows"`
	CommittedAt   time.Time `json:"committed_at"`
}

// Errors that a stream reports to its client, wrapped with details. Test
// with errors.Is.
var (
	// ErrUnavailable means Kafka could not be reached or answered with a
	// condition that passes (no broker answered, a refused or dropped
	// connection, a leader or coordinator being elected or loading, too few
	// in-sync replicas, a request timeout) or acknowledged nothing within
	// kafka.produce_timeout. Retrying later, with the same writer_id, may
	// succeed. IsUnavailable also recognises such errors unwrapped.
	ErrUnavailable = errors.New("kafka unavailable")
	// ErrTopicMissing means the topic does not exist and create_topics is off.
	ErrTopicMissing = errors.New("topic does not exist")
	// ErrRecordTooLarge means a record exceeds the topic's max.message.bytes.
	ErrRecordTooLarge = errors.New("record too large")
	// ErrRecordRejected means the broker refused a record (a timestamp out
	// of range, a null key on a compacted topic) that the checks made when
	// the stream opened did not catch.
	ErrRecordRejected = errors.New("record rejected by the broker")
	// ErrFenced means a newer producer with the same transactional.id took
	// over: this stream's transaction can never commit.
	ErrFenced = errors.New("fenced")
	// ErrTxnAborted means the broker aborted the open transaction on its own,
	// typically because kafka.transaction_timeout passed without a commit.
	ErrTxnAborted = errors.New("transaction aborted by the broker")
	// ErrOutcomeUnknown means a commit was sent but its result is unknown; the
	// writer's stored progress tells the truth after a reconnect.
	ErrOutcomeUnknown = errors.New("commit outcome unknown")
	// ErrAuthFailed means Kafka refused the server's credentials, or they
	// could not be obtained (a token endpoint failing); the message names
	// the cause. Retrying later may succeed: credentials are resolved again
	// at every authentication.
	ErrAuthFailed = errors.New("kafka authentication failed")
	// ErrPoolExhausted means every anonymous exactly-once producer is in use.
	ErrPoolExhausted = errors.New("every exactly-once producer is in use")
	// ErrSchemaRejected means the registry refused a schema (typically as
	// incompatible with the subject's earlier versions).
	ErrSchemaRejected = errors.New("schema rejected by the registry")
)

// Format is how a row becomes a record value.
type Format string

// The formats of record values.
const (
	FormatJSON      Format = "json"       // one JSON object per row (docs/json-mapping.md)
	FormatAvro      Format = "avro"       // an Avro datum per row (Confluent wire format with a registry)
	FormatRawString Format = "raw_string" // one utf8 column's bytes
	FormatRawBytes  Format = "raw_bytes"  // one binary column's bytes
	// FormatProtobuf is a proto3 message per row (Confluent wire format,
	// message index included, with a registry).
	FormatProtobuf Format = "protobuf"
	// FormatJSONSchema is the JSON object of FormatJSON with a JSON Schema
	// registered and the Confluent wire format header (needs a registry).
	FormatJSONSchema Format = "json_schema"
)

// KeyFormat is how the key columns become a record key.
type KeyFormat string

// The formats of record keys.
const (
	KeyString     KeyFormat = "string"      // the key_field column's bytes or decimal text (the default)
	KeyJSON       KeyFormat = "json"        // JSON: the key_field value, or an object of the key_fields
	KeyAvro       KeyFormat = "avro"        // an Avro datum (Confluent wire format with a registry)
	KeyProtobuf   KeyFormat = "protobuf"    // a proto3 message of the key columns (wire format with a registry)
	KeyJSONSchema KeyFormat = "json_schema" // KeyJSON with a JSON Schema registered and the wire format header
)

// SubjectStrategy names the registry subject a schema is registered under,
// as the Confluent serializers' subject.name.strategy does.
type SubjectStrategy string

// The subject naming strategies.
const (
	SubjectTopic       SubjectStrategy = "topic"        // <topic>-value, <topic>-key (TopicNameStrategy, the default)
	SubjectRecord      SubjectStrategy = "record"       // the record's full name (RecordNameStrategy)
	SubjectTopicRecord SubjectStrategy = "topic_record" // <topic>-<full name> (TopicRecordNameStrategy)
)

// RecordOptions are a stream's choices of what each record looks like: the
// record keys of its descriptor (README "Record formats and shape").
type RecordOptions struct {
	Topic             string // the stream's topic (rows go there unless TopicField says)
	Format            Format
	JSON              encode.JSONOptions // json.timestamp_format, json.decimal
	JSONIncludeSchema bool               // Kafka Connect's schema envelope
	ValueFields       []string           // the value's columns (default: all)
	ExcludeFields     []string           // columns left out of the value
	ValueField        string             // raw formats: the value column
	Subject           string             // registry formats: the value's subject (wins over SubjectStrategy)
	SubjectStrategy   SubjectStrategy    // how value and key subjects are named ("": topic)
	KeyField          string             // the record key's column
	KeyFields         []string           // the record key's columns, as one record (excludes KeyField)
	KeyFormat         KeyFormat          // how the key columns become a key ("": string)
	TimestampField    string             // the record timestamp's column
	TombstoneField    string             // boolean column: true writes a null value
	HeadersField      string             // map or list-of-struct column of record headers
	Headers           map[string]string  // headers on every record
	ProvenanceHeaders bool               // flightsink-writer, -checkpoint, -row headers
	PartitionField    string             // integer column choosing the partition
	TopicField        string             // utf8 column choosing each row's topic
	WriterID          string             // for provenance headers
	// OnBadRow is what a row that cannot become a record does: fail its
	// batch (the default), be skipped, or go to the dead-letter topic.
	OnBadRow BadRowPolicy
	// DeadLetter is the dead-letter topic (OnBadRow BadRowDeadLetter).
	DeadLetter TopicInfo
}

// BadRowPolicy is what a row that cannot become a record does.
type BadRowPolicy string

// The bad-row policies (descriptor key on_bad_row).
const (
	BadRowFail       BadRowPolicy = ""            // reject the row's batch: the stream fails
	BadRowSkip       BadRowPolicy = "skip"        // leave the row out, count it
	BadRowDeadLetter BadRowPolicy = "dead_letter" // write the row as JSON, with its error, to the dead-letter topic
)

// The headers of a dead-letter record.
const (
	HeaderError       = "flightsink-error"        // the problem, as a bad_row status would name it
	HeaderReason      = "flightsink-reason"       // bad_row
	HeaderColumn      = "flightsink-column"       // the column at fault (absent when none)
	HeaderRow         = "flightsink-row"          // the stream row number
	HeaderSourceTopic = "flightsink-source-topic" // the topic the row was meant for
	HeaderWriter      = "flightsink-writer"       // the writer_id ("" for anonymous streams)
	HeaderCheckpoint  = "flightsink-checkpoint"   // the checkpoint the row belongs to
)

// OptionError is a record option that cannot be used (with this schema);
// its message names the option.
type OptionError struct{ Msg string }

func (e *OptionError) Error() string { return e.Msg }

// SchemaError is a column that cannot be written as asked: a type no
// encoder takes, or a named column missing or of the wrong type.
type SchemaError struct {
	Msg string
	Err error
}

func (e *SchemaError) Error() string { return e.Msg }
func (e *SchemaError) Unwrap() error { return e.Err }

// RowError is a row that cannot become a record; Row counts from the
// batch's first row. Its batch is rejected whole.
type RowError struct {
	Row     int
	Problem string
	Column  string // the column at fault, "" when it is the record as a whole
}

func (e *RowError) Error() string { return fmt.Sprintf("row %d: %s", e.Row, e.Problem) }

// BindError is a record batch that does not match the plan's schema.
type BindError struct{ Err error }

func (e *BindError) Error() string { return e.Err.Error() }
func (e *BindError) Unwrap() error { return e.Err }

// RegisterFunc registers a value or key schema under a subject and
// returns its id (a schema registry); its error is returned as it is.
type RegisterFunc func(subject string, schema Schema) (int, error)

// SchemaType is the kind of a registered schema, as the registry's
// schemaType names it.
type SchemaType string

// The schema types flightsink registers.
const (
	SchemaAvro     SchemaType = "AVRO"
	SchemaProtobuf SchemaType = "PROTOBUF"
	SchemaJSON     SchemaType = "JSON"
)

// Schema is a schema to register: its type and its text (Avro JSON, a
// .proto file, a JSON Schema). The derived .proto files import only
// well-known types (google/protobuf/*.proto), which registries resolve
// without references.
type Schema struct {
	Type SchemaType
	Text string
}

// UnresolvedTopic is a topic_field topic a Plan has not been given yet;
// Row is the first row of the bound batch that names it.
type UnresolvedTopic struct {
	Name string
	Row  int
}

// Chunk is records a Plan built from rows of a batch, in memory the Kafka
// side owns: hand it to a Writer (which recycles it once Kafka acknowledged
// it) or Recycle it.
type Chunk interface {
	Len() int   // the number of records
	Bytes() int // their keys', values' and headers' bytes
	Size() int  // what they count against kafka.max_buffered_bytes
	Recycle()   // gives the memory back, for a chunk never handed to a Writer
	// Rejected are the rows the chunk left out (skipped or dead-lettered)
	// under a bad-row policy other than fail.
	Rejected() []RowError
}

// Plan turns record batches of one schema into records, chunk by chunk.
type Plan interface {
	// Bind prepares the plan for the rows of rec (a *BindError when rec
	// does not match the schema).
	Bind(rec arrow.RecordBatch) error
	// UnknownTopics lists the bound batch's topic_field topics the plan
	// has not been given, each with the first row naming it (a null topic
	// is a *RowError); look each up once, then AddTopic.
	UnknownTopics() ([]UnresolvedTopic, error)
	// AddTopic gives the plan a topic_field topic rows may go to.
	AddTopic(name string, info TopicInfo)
	// RejectTopic makes the rows naming a topic_field topic that cannot be
	// used bad rows with problem (a bad-row policy other than fail).
	RejectTopic(name, problem string)
	// Encode builds records of the bound batch's rows from row from on,
	// about a chunk's worth (kafka.max_buffered_bytes / 8); next is the
	// first row it did not encode. A row that cannot become a record is a
	// *RowError. firstRow is the stream row number of the batch's row 0,
	// checkpoint the number the rows will belong to, now the produce time.
	Encode(rows, from int, firstRow, checkpoint int64, now time.Time) (c Chunk, next int, err error)
	// AvroSchema is the Avro writer schema of format avro, "" otherwise.
	AvroSchema() string
	// ProtoSchema is the .proto of format protobuf, "" otherwise.
	ProtoSchema() string
	// Registered reports whether the values carry a registry's wire format.
	Registered() bool
}

// Writer is how one stream hands its records to Kafka.
type Writer interface {
	// Produce hands a chunk over, blocking while the writer holds
	// kafka.max_buffered_bytes unacknowledged (back-pressure). It returns
	// the first error of any earlier record of this writer.
	Produce(ctx context.Context, c Chunk) error
	// Checkpoint makes everything produced so far durable: at-least-once
	// waits for this writer's records; exactly-once commits the open
	// transaction, storing p for a named writer.
	Checkpoint(ctx context.Context, p Progress) error
	// Close ends the writer: with commit, it first makes the tail durable
	// as Checkpoint does; without, an exactly-once writer aborts.
	Close(ctx context.Context, commit bool, p Progress) error
	// Backlog is what the writer holds unacknowledged and its budget.
	Backlog() (pending, limit int)
	// ReportOffsets makes the writer note the offset of every record Kafka
	// acknowledges (its progress records aside), for TakeOffsets.
	ReportOffsets()
	// TakeOffsets returns the offsets noted since the previous call (nil
	// when not reporting). Called after a Checkpoint: the checkpoint's.
	TakeOffsets() Offsets
}

// Offsets are the first and last offsets of the records written, by topic
// and partition.
type Offsets map[string]map[int32][2]int64

// Add notes one record's offset.
func (o Offsets) Add(topic string, partition int32, offset int64) {
	parts := o[topic]
	if parts == nil {
		parts = map[int32][2]int64{}
		o[topic] = parts
	}
	if r, ok := parts[partition]; ok {
		parts[partition] = [2]int64{min(r[0], offset), max(r[1], offset)}
	} else {
		parts[partition] = [2]int64{offset, offset}
	}
}

// Merge adds every range of other.
func (o Offsets) Merge(other Offsets) {
	for topic, parts := range other {
		for p, r := range parts {
			o.Add(topic, p, r[0])
			o.Add(topic, p, r[1])
		}
	}
}

// Opened is what opening an exactly-once writer found out.
type Opened struct {
	Writer Writer
	// Progress is the named writer's committed progress; HasProgress is
	// false for a new writer and for anonymous streams.
	Progress    Progress
	HasProgress bool
}

// Registry registers schemas with a schema registry.
type Registry interface {
	Register(ctx context.Context, subject string, schema Schema) (int, error)
	// Match returns the id of subject's latest version when schema has its
	// shape (records encoded with schema decode with it), else
	// ErrSchemaRejected naming the difference; it registers nothing.
	Match(ctx context.Context, subject string, schema Schema) (int, error)
}

// Limits are the Kafka side's settings a stream checks against.
type Limits struct {
	MaxBufferedBytes   int           // kafka.max_buffered_bytes
	MaxTransactionRows int64         // kafka.max_transaction_rows (0: none)
	TransactionTimeout time.Duration // kafka.transaction_timeout
}

// ValidIDPart reports whether s may be part of a transactional id, a
// topic name or a principal name: [A-Za-z0-9._-] only.
func ValidIDPart(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
