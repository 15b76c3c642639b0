package kafka

import (
	"fmt"

	"github.com/flightsink/flightsink/kafka/encode"
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
}

// OptionError is a record option that cannot be used (with this schema);
// its message names the option.
type OptionError struct{ Msg string }

func (e *OptionError) Error() string { return e.Msg }

func optionError(msg string) *OptionError { return &OptionError{Msg: msg} }

// SchemaError is a column that cannot be written as asked: a type no
// encoder takes, or a named column missing or of the wrong type.
type SchemaError struct {
	Msg string
	Err error
}

func (e *SchemaError) Error() string { return e.Msg }
func (e *SchemaError) Unwrap() error { return e.Err }

// schemaError names the option at fault ("" for the value's columns).
func schemaError(key string, err error) *SchemaError {
	msg := "unsupported schema: " + err.Error()
	if key != "" {
		msg = fmt.Sprintf("invalid descriptor key %q: %v", key, err)
	}
	return &SchemaError{Msg: msg, Err: err}
}

// RowError is a row that cannot become a record; Row counts from the
// batch's first row. Its batch is rejected whole.
type RowError struct {
	Row     int
	Problem string
}

func (e *RowError) Error() string { return fmt.Sprintf("row %d: %s", e.Row, e.Problem) }

// BindError is a record batch that does not match the plan's schema.
type BindError struct{ Err error }

func (e *BindError) Error() string { return e.Err.Error() }
func (e *BindError) Unwrap() error { return e.Err }
