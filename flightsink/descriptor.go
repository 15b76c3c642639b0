package flightsink

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow/flight"

	"github.com/flightsink/flightsink/kafka/encode"
	"github.com/flightsink/flightsink/kafka/sinkapi"
)

// Delivery is a stream's delivery guarantee.
type Delivery string

// The delivery modes a descriptor may ask for.
const (
	// AtLeastOnce produces through a shared idempotent producer; a checkpoint
	// waits until every record the stream sent so far is acknowledged.
	AtLeastOnce Delivery = "at_least_once"
	// ExactlyOnce gives each stream its own transactional producer; a
	// checkpoint commits the open transaction.
	ExactlyOnce Delivery = "exactly_once"
)

// Format is how a row becomes a record value.
type Format string

// The formats of record values.
const (
	// FormatJSON writes each row as one JSON object (docs/json-mapping.md).
	FormatJSON Format = "json"
	// FormatAvro writes each row as an Avro datum (Confluent wire format
	// with a schema registry).
	FormatAvro Format = "avro"
	// FormatRawString writes one utf8 column's bytes as the value.
	FormatRawString Format = "raw_string"
	// FormatRawBytes writes one binary column's bytes as the value.
	FormatRawBytes Format = "raw_bytes"
	// FormatProtobuf writes each row as a proto3 message (Confluent wire
	// format with a schema registry).
	FormatProtobuf Format = "protobuf"
	// FormatJSONSchema writes FormatJSON's objects with a JSON Schema
	// registered and the Confluent wire format header.
	FormatJSONSchema Format = "json_schema"
)

// Descriptor is what a DoPut's FlightDescriptor asks for, validated.
type Descriptor struct {
	Topic          string   // Kafka topic, always valid by Kafka's naming rules
	KeyField       string   // column whose value is the record key; "" for none
	TimestampField string   // column whose value is the record timestamp; "" for produce time
	Delivery       Delivery // "" means the server's default
	WriterID       string   // names a resumable exactly-once writer; "" for anonymous
	Format         Format
	// CommitOnClose (default true) commits the tail after the last checkpoint
	// when an exactly-once stream ends cleanly; false aborts it instead.
	CommitOnClose bool

	JSON              encode.JSONOptions // json.timestamp_format, json.decimal
	JSONIncludeSchema bool               // json.include_schema: Kafka Connect's schema envelope
	ValueFields       []string           // the value's columns (default: all)
	ExcludeFields     []string           // columns left out of the value
	ValueField        string             // raw formats: the value column
	Subject           string             // registry formats: the value's subject (default: by SubjectStrategy)
	SubjectStrategy   string             // subject_name_strategy: topic, record, topic_record ("": topic)
	KeyFields         []string           // columns of a record key (excludes KeyField)
	KeyFormat         string             // key_format: string, json, avro, protobuf, json_schema ("": string)
	TombstoneField    string             // boolean column: true writes a null value
	HeadersField      string             // map or list-of-struct column of record headers
	Headers           map[string]string  // headers on every record
	ProvenanceHeaders bool               // flightsink-writer, -checkpoint, -row headers
	PartitionField    string             // integer column choosing the partition
	TopicField        string             // utf8 column choosing each row's topic
	// OnBadRow: a row that cannot become a record fails its batch
	// (default), is skipped, or goes to DeadLetterTopic as JSON.
	OnBadRow        sinkapi.BadRowPolicy
	DeadLetterTopic string // default <topic>.dlq
	// MaxBadRows turns bad rows back into a failure: more than this many
	// (>= 1), or more than this fraction of the rows read (< 1); 0: no cap.
	MaxBadRows float64
	// ReportOffsets: acks and done carry the first and last offset written
	// per topic and partition since the previous ack.
	ReportOffsets bool
}

// writerNeedsExactlyOnce refuses a named writer in at-least-once mode.
func writerNeedsExactlyOnce(d Delivery) error {
	if d == AtLeastOnce {
		return badDescriptor(`cmd: key "writer_id" requires "delivery":"exactly_once" (an at-least-once stream cannot be resumed)`)
	}
	return nil
}

// recordOptions are the descriptor's choices of what each record looks like.
func (d *Descriptor) recordOptions() *sinkapi.RecordOptions {
	return &sinkapi.RecordOptions{Topic: d.Topic, Format: sinkapi.Format(d.Format), JSON: d.JSON, JSONIncludeSchema: d.JSONIncludeSchema,
		ValueFields: d.ValueFields, ExcludeFields: d.ExcludeFields, ValueField: d.ValueField, Subject: d.Subject,
		SubjectStrategy: sinkapi.SubjectStrategy(d.SubjectStrategy), KeyFields: d.KeyFields, KeyFormat: sinkapi.KeyFormat(d.KeyFormat),
		KeyField: d.KeyField, TimestampField: d.TimestampField, TombstoneField: d.TombstoneField, HeadersField: d.HeadersField,
		Headers: d.Headers, ProvenanceHeaders: d.ProvenanceHeaders, PartitionField: d.PartitionField, TopicField: d.TopicField,
		WriterID: d.WriterID, OnBadRow: d.OnBadRow}
}

// rawDescriptor mirrors the CMD JSON object; pointers tell absent from empty.
type rawDescriptor struct {
	Topic          *string `json:"topic"`
	KeyField       *string `json:"key_field"`
	TimestampField *string `json:"timestamp_field"`
	Delivery       *string `json:"delivery"`
	WriterID       *string `json:"writer_id"`
	Format         *string `json:"format"`
	CommitOnClose  *bool   `json:"commit_on_close"`

	TimestampFormat   *string           `json:"json.timestamp_format"`
	Decimal           *string           `json:"json.decimal"`
	IncludeSchema     *bool             `json:"json.include_schema"`
	ValueFields       []string          `json:"value_fields"`
	ExcludeFields     []string          `json:"exclude_fields"`
	ValueField        *string           `json:"value_field"`
	Subject           *string           `json:"subject"`
	SubjectStrategy   *string           `json:"subject_name_strategy"`
	KeyFields         []string          `json:"key_fields"`
	KeyFormat         *string           `json:"key_format"`
	TombstoneField    *string           `json:"tombstone_field"`
	HeadersField      *string           `json:"headers_field"`
	Headers           map[string]string `json:"headers"`
	ProvenanceHeaders *bool             `json:"provenance_headers"`
	PartitionField    *string           `json:"partition_field"`
	TopicField        *string           `json:"topic_field"`
	OnBadRow          *string           `json:"on_bad_row"`
	DeadLetterTopic   *string           `json:"dead_letter_topic"`
	MaxBadRows        *float64          `json:"max_bad_rows"`
	ReportOffsets     *bool             `json:"report_offsets"`
}

var (
	topicNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	writerIDRE  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,200}$`)
)

// ValidateTopicName applies Kafka's topic naming rules (at most 249
// characters of [A-Za-z0-9._-], not "." or "..").
func ValidateTopicName(topic string) error {
	switch {
	case topic == "":
		return fmt.Errorf("topic is empty")
	case topic == "." || topic == "..":
		return fmt.Errorf("topic %q is not allowed by Kafka", topic)
	case len(topic) > 249:
		return fmt.Errorf("topic is %d characters long; Kafka allows at most 249", len(topic))
	case !topicNameRE.MatchString(topic):
		return fmt.Errorf("topic %q has characters Kafka does not allow (only A-Z a-z 0-9 . _ -)", clip(topic))
	}
	return nil
}

// ParseDescriptor validates a DoPut FlightDescriptor: a PATH of exactly one
// element (the topic, every option at its default) or a CMD holding a UTF-8
// JSON object. Errors are *Error with ReasonBadDescriptor naming the key.
func ParseDescriptor(fd *flight.FlightDescriptor) (*Descriptor, error) {
	if fd == nil {
		return nil, badDescriptor("the first message has no FlightDescriptor; send the topic as a PATH or a JSON CMD")
	}
	d := &Descriptor{Format: FormatJSON, CommitOnClose: true}
	switch fd.Type {
	case flight.DescriptorPATH:
		if len(fd.Path) != 1 {
			return nil, badDescriptor(fmt.Sprintf("a PATH descriptor must have exactly one element, the topic; got %d", len(fd.Path)))
		}
		if err := ValidateTopicName(fd.Path[0]); err != nil {
			return nil, badDescriptor("path[0]: " + err.Error())
		}
		d.Topic = fd.Path[0]
		return d, nil
	case flight.DescriptorCMD:
		return parseCommand(fd.Cmd, d)
	default:
		return nil, badDescriptor(fmt.Sprintf("descriptor type %v is not supported; use PATH [topic] or a JSON CMD", fd.Type))
	}
}

func parseCommand(cmd []byte, d *Descriptor) (*Descriptor, error) {
	if !utf8.Valid(cmd) {
		return nil, badDescriptor("cmd is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(cmd))
	dec.DisallowUnknownFields()
	var raw rawDescriptor
	if err := dec.Decode(&raw); err != nil {
		return nil, badDescriptor("cmd: " + describeJSONError(err))
	}
	if dec.More() {
		return nil, badDescriptor("cmd: unexpected data after the JSON object")
	}
	if raw.Topic == nil {
		return nil, badDescriptor(`cmd: key "topic" is required`)
	}
	if err := ValidateTopicName(*raw.Topic); err != nil {
		return nil, badDescriptor(`cmd: key "topic": ` + err.Error())
	}
	d.Topic = *raw.Topic
	if raw.KeyField != nil {
		if *raw.KeyField == "" {
			return nil, badDescriptor(`cmd: key "key_field" is empty; leave it out for records without a key`)
		}
		d.KeyField = *raw.KeyField
	}
	if raw.TimestampField != nil {
		if *raw.TimestampField == "" {
			return nil, badDescriptor(`cmd: key "timestamp_field" is empty; leave it out to use the produce time`)
		}
		d.TimestampField = *raw.TimestampField
	}
	if raw.Delivery != nil {
		switch v := Delivery(*raw.Delivery); v {
		case AtLeastOnce, ExactlyOnce:
			d.Delivery = v
		default:
			return nil, badDescriptor(fmt.Sprintf(`cmd: key "delivery": %q is not one of "at_least_once", "exactly_once"`, clip(*raw.Delivery)))
		}
	}
	if raw.Format != nil {
		switch v := Format(*raw.Format); v {
		case FormatJSON, FormatAvro, FormatProtobuf, FormatJSONSchema, FormatRawString, FormatRawBytes:
			d.Format = v
		default:
			return nil, badDescriptor(fmt.Sprintf(`cmd: key "format": %q is not supported (supported: "json", "avro", "protobuf", "json_schema", "raw_string", "raw_bytes")`, clip(*raw.Format)))
		}
	}
	if raw.WriterID != nil {
		if !writerIDRE.MatchString(*raw.WriterID) {
			return nil, badDescriptor(fmt.Sprintf(`cmd: key "writer_id": %q must be 1-200 characters of [A-Za-z0-9._-]`, clip(*raw.WriterID)))
		}
		if err := writerNeedsExactlyOnce(d.Delivery); err != nil {
			return nil, err
		}
		d.WriterID = *raw.WriterID
	}
	if raw.CommitOnClose != nil {
		d.CommitOnClose = *raw.CommitOnClose
	}
	if err := parseFormatOptions(&raw, d); err != nil {
		return nil, err
	}
	return d, nil
}

// describeJSONError turns encoding/json errors into messages naming the key.
func describeJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case asError(err, &typeErr):
		if typeErr.Field == "" {
			return "must be a JSON object, got " + typeErr.Value
		}
		return fmt.Sprintf("key %q must be a %s, got %s", clip(typeErr.Field), jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
	case asError(err, &syntaxErr):
		return fmt.Sprintf("invalid JSON at byte %d: %s", syntaxErr.Offset, clip(err.Error()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		key := strings.TrimPrefix(err.Error(), "json: unknown field ")
		if k, err := strconv.Unquote(key); err == nil {
			key = k
		}
		return fmt.Sprintf("unknown key %q", clip(key)) +
			` (known keys: topic, key_field, timestamp_field, delivery, writer_id, format, commit_on_close, ` +
			`json.timestamp_format, json.decimal, json.include_schema, value_fields, exclude_fields, value_field, subject, ` +
			`subject_name_strategy, key_fields, key_format, tombstone_field, headers_field, headers, provenance_headers, partition_field, topic_field, ` +
			`on_bad_row, dead_letter_topic, max_bad_rows, report_offsets)`
	case err.Error() == "EOF":
		return "empty; expected a JSON object such as {\"topic\":\"orders\"}"
	}
	return clip(err.Error())
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "int", "int64", "float64":
		return "number"
	}
	return goKind
}

// parseFormatOptions checks the keys that shape record values and headers.
func parseFormatOptions(raw *rawDescriptor, d *Descriptor) error {
	column := func(key string, v *string) (string, error) {
		if v == nil {
			return "", nil
		}
		if *v == "" {
			return "", badDescriptor(fmt.Sprintf("cmd: key %q is empty; leave it out", key))
		}
		return *v, nil
	}
	var err error
	for _, c := range []struct {
		key string
		v   *string
		dst *string
	}{
		{"value_field", raw.ValueField, &d.ValueField}, {"tombstone_field", raw.TombstoneField, &d.TombstoneField},
		{"headers_field", raw.HeadersField, &d.HeadersField}, {"partition_field", raw.PartitionField, &d.PartitionField},
		{"topic_field", raw.TopicField, &d.TopicField}, {"subject", raw.Subject, &d.Subject},
	} {
		if *c.dst, err = column(c.key, c.v); err != nil {
			return err
		}
	}
	if raw.TimestampFormat != nil {
		switch *raw.TimestampFormat {
		case "rfc3339", "unix_millis", "unix_micros":
			d.JSON.TimestampFormat = *raw.TimestampFormat
		default:
			return badDescriptor(fmt.Sprintf(`cmd: key "json.timestamp_format": %q is not one of "rfc3339", "unix_millis", "unix_micros"`, clip(*raw.TimestampFormat)))
		}
	}
	if raw.Decimal != nil {
		switch *raw.Decimal {
		case "string":
		case "number":
			d.JSON.DecimalAsNumber = true
		default:
			return badDescriptor(fmt.Sprintf(`cmd: key "json.decimal": %q is not one of "string", "number"`, clip(*raw.Decimal)))
		}
	}
	if raw.IncludeSchema != nil {
		d.JSONIncludeSchema = *raw.IncludeSchema
	}
	if d.Format == FormatJSONSchema && d.JSONIncludeSchema {
		return badDescriptor(`cmd: key "json.include_schema" cannot be combined with "format":"json_schema" (its schema is in the registry)`)
	}
	if d.Format != FormatJSON && d.Format != FormatJSONSchema && (raw.TimestampFormat != nil || raw.Decimal != nil || d.JSONIncludeSchema) {
		return badDescriptor(fmt.Sprintf(`cmd: the "json.*" keys apply to "format":"json" and "json_schema", not %q`, d.Format))
	}
	if d.ValueField != "" && d.Format != FormatRawString && d.Format != FormatRawBytes {
		return badDescriptor(`cmd: key "value_field" applies to the raw_string and raw_bytes formats; use "value_fields" to choose columns`)
	}
	if err := parseKeyOptions(raw, d); err != nil {
		return err
	}
	d.ValueFields, d.ExcludeFields = raw.ValueFields, raw.ExcludeFields
	if len(d.ValueFields) > 0 && len(d.ExcludeFields) > 0 {
		return badDescriptor(`cmd: keys "value_fields" and "exclude_fields" exclude each other; give one`)
	}
	if d.TopicField != "" && d.WriterIDSet() {
		// A named writer stores its topic; a stream over many topics has none.
		return badDescriptor(`cmd: key "topic_field" cannot be combined with "writer_id"`)
	}
	for k := range raw.Headers {
		if k == "" {
			return badDescriptor(`cmd: key "headers": a header name is empty`)
		}
	}
	d.Headers = raw.Headers
	if raw.ProvenanceHeaders != nil {
		d.ProvenanceHeaders = *raw.ProvenanceHeaders
	}
	if raw.ReportOffsets != nil {
		d.ReportOffsets = *raw.ReportOffsets
	}
	return parseBadRowOptions(raw, d)
}

// parseBadRowOptions reads on_bad_row, dead_letter_topic and max_bad_rows.
func parseBadRowOptions(raw *rawDescriptor, d *Descriptor) error {
	if raw.OnBadRow != nil {
		switch v := *raw.OnBadRow; v {
		case "fail":
		case string(sinkapi.BadRowSkip), string(sinkapi.BadRowDeadLetter):
			d.OnBadRow = sinkapi.BadRowPolicy(v)
		default:
			return badDescriptor(fmt.Sprintf(`cmd: key "on_bad_row": %q is not one of "fail", "skip", "dead_letter"`, clip(v)))
		}
	}
	if raw.DeadLetterTopic != nil {
		if d.OnBadRow != sinkapi.BadRowDeadLetter {
			return badDescriptor(`cmd: key "dead_letter_topic" applies to "on_bad_row":"dead_letter"`)
		}
		if err := ValidateTopicName(*raw.DeadLetterTopic); err != nil {
			return badDescriptor(`cmd: key "dead_letter_topic": ` + err.Error())
		}
		d.DeadLetterTopic = *raw.DeadLetterTopic
	}
	if d.OnBadRow == sinkapi.BadRowDeadLetter && d.DeadLetterTopic == "" {
		d.DeadLetterTopic = d.Topic + ".dlq"
		if ValidateTopicName(d.DeadLetterTopic) != nil {
			return badDescriptor(fmt.Sprintf(`cmd: the default dead-letter topic %q is not a valid topic name; set "dead_letter_topic"`, clip(d.DeadLetterTopic)))
		}
	}
	if d.DeadLetterTopic == d.Topic && d.Topic != "" {
		return badDescriptor(`cmd: key "dead_letter_topic" must differ from "topic"`)
	}
	if raw.MaxBadRows != nil {
		v := *raw.MaxBadRows
		switch {
		case d.OnBadRow == sinkapi.BadRowFail:
			return badDescriptor(`cmd: key "max_bad_rows" applies to "on_bad_row" "skip" or "dead_letter"`)
		case v <= 0 || v >= 1 && v != float64(int64(v)):
			return badDescriptor(fmt.Sprintf(`cmd: key "max_bad_rows": %v must be a count (an integer >= 1) or a fraction of the rows (0 < f < 1)`, v))
		}
		d.MaxBadRows = v
	}
	return nil
}

// registryFormat reports whether a value or key format registers a schema.
func registryFormat(f string) bool {
	switch Format(f) {
	case FormatAvro, FormatProtobuf, FormatJSONSchema:
		return true
	}
	return false
}

// parseKeyOptions checks the keys of record keys and registry subjects:
// key_fields, key_format, subject, subject_name_strategy.
func parseKeyOptions(raw *rawDescriptor, d *Descriptor) error {
	if raw.KeyFields != nil {
		if len(raw.KeyFields) == 0 {
			return badDescriptor(`cmd: key "key_fields" is empty; leave it out for records without a key`)
		}
		if d.KeyField != "" {
			return badDescriptor(`cmd: keys "key_field" and "key_fields" exclude each other; give one`)
		}
		for _, name := range raw.KeyFields {
			if name == "" {
				return badDescriptor(`cmd: key "key_fields" names an empty column`)
			}
		}
		d.KeyFields = raw.KeyFields
	}
	if raw.KeyFormat != nil {
		switch sinkapi.KeyFormat(*raw.KeyFormat) {
		case sinkapi.KeyString, sinkapi.KeyJSON, sinkapi.KeyAvro, sinkapi.KeyProtobuf, sinkapi.KeyJSONSchema:
			d.KeyFormat = *raw.KeyFormat
		default:
			return badDescriptor(fmt.Sprintf(`cmd: key "key_format": %q is not one of "string", "json", "avro", "protobuf", "json_schema"`, clip(*raw.KeyFormat)))
		}
		if d.KeyField == "" && len(d.KeyFields) == 0 {
			return badDescriptor(`cmd: key "key_format" needs the key's columns: "key_field" or "key_fields"`)
		}
	}
	if len(d.KeyFields) > 0 && (d.KeyFormat == "" || d.KeyFormat == string(sinkapi.KeyString)) {
		return badDescriptor(`cmd: key "key_fields" makes a record key: set "key_format" to "avro", "protobuf", "json_schema" or "json"`)
	}
	if d.Subject != "" && !registryFormat(string(d.Format)) {
		return badDescriptor(`cmd: key "subject" applies to the formats with a registry schema: "avro", "protobuf", "json_schema"`)
	}
	if raw.SubjectStrategy != nil {
		switch sinkapi.SubjectStrategy(*raw.SubjectStrategy) {
		case sinkapi.SubjectTopic, sinkapi.SubjectRecord, sinkapi.SubjectTopicRecord:
			d.SubjectStrategy = *raw.SubjectStrategy
		default:
			return badDescriptor(fmt.Sprintf(`cmd: key "subject_name_strategy": %q is not one of "topic", "record", "topic_record"`, clip(*raw.SubjectStrategy)))
		}
		if !registryFormat(string(d.Format)) && !registryFormat(d.KeyFormat) {
			return badDescriptor(`cmd: key "subject_name_strategy" applies to the formats with a registry schema ("avro", "protobuf", "json_schema" as "format" or "key_format")`)
		}
	}
	return nil
}

// WriterIDSet reports whether the descriptor names a writer.
func (d *Descriptor) WriterIDSet() bool { return d.WriterID != "" }
