package flightsink

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc/codes"

	"github.com/flightsink/flightsink/kafka/encode"
)

// TestParseRegistryFormats covers the keys of the registry formats and of
// record keys: format protobuf and json_schema, key_format, key_fields,
// subject and subject_name_strategy.
func TestParseRegistryFormats(t *testing.T) {
	cases := []struct {
		cmd  string
		want Descriptor
		err  string
	}{
		{`{"topic":"t","format":"protobuf","subject":"s","subject_name_strategy":"record"}`,
			Descriptor{Topic: "t", Format: FormatProtobuf, Subject: "s", SubjectStrategy: "record", CommitOnClose: true}, ""},
		{`{"topic":"t","format":"json_schema","json.timestamp_format":"unix_millis"}`,
			Descriptor{Topic: "t", Format: FormatJSONSchema, JSON: encode.JSONOptions{TimestampFormat: "unix_millis"}, CommitOnClose: true}, ""},
		{`{"topic":"t","key_fields":["a","b"],"key_format":"avro","subject_name_strategy":"topic_record"}`,
			Descriptor{Topic: "t", Format: FormatJSON, KeyFields: []string{"a", "b"}, KeyFormat: "avro", SubjectStrategy: "topic_record", CommitOnClose: true}, ""},
		{`{"topic":"t","key_field":"a","key_format":"string"}`,
			Descriptor{Topic: "t", Format: FormatJSON, KeyField: "a", KeyFormat: "string", CommitOnClose: true}, ""},
		{`{"topic":"t","format":"json_schema","json.include_schema":true}`, Descriptor{}, `"json.include_schema" cannot be combined with "format":"json_schema"`},
		{`{"topic":"t","format":"protobuf","json.decimal":"number"}`, Descriptor{}, `apply to "format":"json" and "json_schema"`},
		{`{"topic":"t","format":"xml"}`, Descriptor{}, `"protobuf", "json_schema"`},
		{`{"topic":"t","key_field":"a","key_fields":["b"],"key_format":"json"}`, Descriptor{}, `exclude each other`},
		{`{"topic":"t","key_fields":["b"]}`, Descriptor{}, `set "key_format"`},
		{`{"topic":"t","key_fields":["b"],"key_format":"string"}`, Descriptor{}, `set "key_format"`},
		{`{"topic":"t","key_fields":[]}`, Descriptor{}, `"key_fields" is empty`},
		{`{"topic":"t","key_fields":["a",""],"key_format":"json"}`, Descriptor{}, `empty column`},
		{`{"topic":"t","key_format":"avro"}`, Descriptor{}, `needs the key's columns`},
		{`{"topic":"t","key_field":"a","key_format":"thrift"}`, Descriptor{}, `"key_format": "thrift" is not one of`},
		{`{"topic":"t","subject":"s"}`, Descriptor{}, `"subject" applies to the formats with a registry schema`},
		{`{"topic":"t","subject_name_strategy":"record"}`, Descriptor{}, `"subject_name_strategy" applies`},
		{`{"topic":"t","format":"avro","subject_name_strategy":"topic-record"}`, Descriptor{}, `is not one of "topic", "record", "topic_record"`},
		{`{"topic":"t","key_fields":"a"}`, Descriptor{}, `key "key_fields" must be`},
		{`{"topic":"t","keyformat":"json"}`, Descriptor{}, `key_fields, key_format`},
	}
	for _, c := range cases {
		d, err := ParseDescriptor(&flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: []byte(c.cmd)})
		if c.err != "" {
			var fe *Error
			if !errors.As(err, &fe) || fe.Code != codes.InvalidArgument || fe.Reason != ReasonBadDescriptor || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want InvalidArgument bad_descriptor mentioning %q", c.cmd, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(*d, c.want) {
			t.Errorf("%s: got %+v, %v; want %+v", c.cmd, d, err, c.want)
		}
	}
}
