package flightsink

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow/flight"
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

// FormatJSON writes each row as one JSON object (docs/json-mapping.md).
const FormatJSON Format = "json"

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
		return fmt.Errorf("topic %q has characters Kafka does not allow (only A-Z a-z 0-9 . _ -)", topic)
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
			return nil, badDescriptor(fmt.Sprintf(`cmd: key "delivery": %q is not one of "at_least_once", "exactly_once"`, *raw.Delivery))
		}
	}
	if raw.Format != nil {
		switch v := Format(*raw.Format); v {
		case FormatJSON:
			d.Format = v
		default:
			return nil, badDescriptor(fmt.Sprintf(`cmd: key "format": %q is not supported (supported: "json")`, *raw.Format))
		}
	}
	if raw.WriterID != nil {
		if !writerIDRE.MatchString(*raw.WriterID) {
			return nil, badDescriptor(fmt.Sprintf(`cmd: key "writer_id": %q must be 1-200 characters of [A-Za-z0-9._-]`, *raw.WriterID))
		}
		if d.Delivery == AtLeastOnce {
			return nil, badDescriptor(`cmd: key "writer_id" requires "delivery":"exactly_once" (an at-least-once stream cannot be resumed)`)
		}
		d.WriterID = *raw.WriterID
	}
	if raw.CommitOnClose != nil {
		d.CommitOnClose = *raw.CommitOnClose
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
		return fmt.Sprintf("key %q must be a %s, got %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
	case asError(err, &syntaxErr):
		return fmt.Sprintf("invalid JSON at byte %d: %v", syntaxErr.Offset, err)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown key " + strings.TrimPrefix(err.Error(), "json: unknown field ") +
			` (known keys: topic, key_field, timestamp_field, delivery, writer_id, format, commit_on_close)`
	case err.Error() == "EOF":
		return "empty; expected a JSON object such as {\"topic\":\"orders\"}"
	}
	return err.Error()
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
