package flightsink

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc/codes"
)

func TestParseDescriptor(t *testing.T) {
	cases := []struct {
		cmd  string
		want Descriptor
		err  string
	}{
		{`{"topic":"orders"}`, Descriptor{Topic: "orders", Format: FormatJSON, CommitOnClose: true}, ""},
		{`{"topic":"a.b_c-1","key_field":"k","timestamp_field":"ts","delivery":"exactly_once","writer_id":"w.1","format":"json","commit_on_close":false}`,
			Descriptor{Topic: "a.b_c-1", KeyField: "k", TimestampField: "ts", Delivery: ExactlyOnce, WriterID: "w.1", Format: FormatJSON}, ""},
		{`{"topic":"t","delivery":"at_least_once","writer_id":"w"}`, Descriptor{}, `"writer_id" requires "delivery":"exactly_once"`},
		{`{"topic":"t","writer_id":"a b"}`, Descriptor{}, `key "writer_id"`},
		{`{"topic":"t","writer_id":"` + strings.Repeat("w", 201) + `"}`, Descriptor{}, `key "writer_id"`},
		{`{"topic":".."}`, Descriptor{}, `not allowed`},
		{`{"topic":"` + strings.Repeat("t", 250) + `"}`, Descriptor{}, `at most 249`},
		{`{"topic":"t","key_field":""}`, Descriptor{}, `"key_field" is empty`},
		{`{"topic":"t","commit_on_close":"no"}`, Descriptor{}, `key "commit_on_close" must be a boolean`},
		{`{"topic":"t"} {"topic":"u"}`, Descriptor{}, `unexpected data after`},
		{``, Descriptor{}, `empty`},
		{`{"topic":"t",}`, Descriptor{}, `invalid JSON`},
		{"{\"topic\":\"\xff\"}", Descriptor{}, `not valid UTF-8`},
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
	if _, err := ParseDescriptor(nil); err == nil {
		t.Error("a nil descriptor was accepted")
	}
	if _, err := ParseDescriptor(&flight.FlightDescriptor{Type: flight.DescriptorPATH}); err == nil {
		t.Error("an empty PATH was accepted")
	}
}

// ParseMarker's cases are the protocol fixtures: TestProtocolMarkers
// (protocol_test.go) reads testdata/protocol/markers.json.

// FuzzParseDescriptor: any bytes give a valid descriptor or a typed
// InvalidArgument, never a panic; accepted topics obey Kafka's rules.
func FuzzParseDescriptor(f *testing.F) {
	for _, s := range []string{`{"topic":"orders"}`, `{"topic":"t","key_field":"k","delivery":"exactly_once","writer_id":"w"}`,
		`{"topic":5}`, `{`, `{"topic":"t","commit_on_close":false}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, cmd []byte) {
		d, err := ParseDescriptor(&flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: cmd})
		if err != nil {
			var fe *Error
			if !errors.As(err, &fe) || fe.Code != codes.InvalidArgument {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if ValidateTopicName(d.Topic) != nil {
			t.Fatalf("accepted invalid topic %q", d.Topic)
		}
		if d.WriterID != "" && !writerIDRE.MatchString(d.WriterID) {
			t.Fatalf("accepted invalid writer id %q", d.WriterID)
		}
	})
}

// FuzzParseMarker: any bytes give a checkpoint ≥ 1, an abort, or a typed
// InvalidArgument.
func FuzzParseMarker(f *testing.F) {
	for _, s := range []string{`{"checkpoint":1}`, `{"abort":"x"}`, `{"checkpoint":0}`, `{}`, `x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, meta []byte) {
		m, err := ParseMarker(meta)
		if err != nil {
			var fe *Error
			if !errors.As(err, &fe) || fe.Reason != ReasonBadMetadata {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if !m.IsAbort && m.Checkpoint < 1 {
			t.Fatalf("accepted checkpoint %d", m.Checkpoint)
		}
	})
}
