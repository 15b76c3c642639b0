package kafka

import "github.com/flightsink/flightsink/kafka/sinkapi"

// The types and errors this package shares with the Flight service live in
// package sinkapi (which imports no Kafka client); these names keep them
// at hand here.
type (
	TopicInfo       = sinkapi.TopicInfo
	Progress        = sinkapi.Progress
	Opened          = sinkapi.Opened
	Format          = sinkapi.Format
	RecordOptions   = sinkapi.RecordOptions
	OptionError     = sinkapi.OptionError
	SchemaError     = sinkapi.SchemaError
	RowError        = sinkapi.RowError
	BindError       = sinkapi.BindError
	RegisterFunc    = sinkapi.RegisterFunc
	UnresolvedTopic = sinkapi.UnresolvedTopic
	KeyFormat       = sinkapi.KeyFormat
	SubjectStrategy = sinkapi.SubjectStrategy
	SchemaType      = sinkapi.SchemaType
	Schema          = sinkapi.Schema
)

// The record value formats.
const (
	FormatJSON       = sinkapi.FormatJSON
	FormatAvro       = sinkapi.FormatAvro
	FormatRawString  = sinkapi.FormatRawString
	FormatRawBytes   = sinkapi.FormatRawBytes
	FormatProtobuf   = sinkapi.FormatProtobuf
	FormatJSONSchema = sinkapi.FormatJSONSchema

	KeyString     = sinkapi.KeyString
	KeyJSON       = sinkapi.KeyJSON
	KeyAvro       = sinkapi.KeyAvro
	KeyProtobuf   = sinkapi.KeyProtobuf
	KeyJSONSchema = sinkapi.KeyJSONSchema

	SubjectTopic       = sinkapi.SubjectTopic
	SubjectRecord      = sinkapi.SubjectRecord
	SubjectTopicRecord = sinkapi.SubjectTopicRecord

	SchemaAvro     = sinkapi.SchemaAvro
	SchemaProtobuf = sinkapi.SchemaProtobuf
	SchemaJSON     = sinkapi.SchemaJSON
)

// The errors a stream reports (see sinkapi).
var (
	ErrUnavailable    = sinkapi.ErrUnavailable
	ErrTopicMissing   = sinkapi.ErrTopicMissing
	ErrRecordTooLarge = sinkapi.ErrRecordTooLarge
	ErrRecordRejected = sinkapi.ErrRecordRejected
	ErrFenced         = sinkapi.ErrFenced
	ErrTxnAborted     = sinkapi.ErrTxnAborted
	ErrOutcomeUnknown = sinkapi.ErrOutcomeUnknown
	ErrPoolExhausted  = sinkapi.ErrPoolExhausted
	ErrSchemaRejected = sinkapi.ErrSchemaRejected
	ErrAuthFailed     = sinkapi.ErrAuthFailed
)

// ValidIDPart reports whether s may be part of a transactional id, a topic
// name or a principal name: [A-Za-z0-9._-] only.
func ValidIDPart(s string) bool { return sinkapi.ValidIDPart(s) }
