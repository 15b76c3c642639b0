package flightsink

import (
	"bytes"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	protobuf "google.golang.org/protobuf/proto"
)

// FuzzFlightDataCodec: the in-place FlightData decoder accepts exactly what
// protobuf accepts and yields the same message, whatever the bytes (field
// order, repeats, unknown fields, wrong wire types, truncation).
func FuzzFlightDataCodec(f *testing.F) {
	full, err := protobuf.Marshal(&flight.FlightData{
		FlightDescriptor: &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: []byte(`{"topic":"t"}`), Path: []string{"a"}},
		DataHeader:       []byte{1, 2, 3}, AppMetadata: []byte(`{"checkpoint":1}`), DataBody: bytes.Repeat([]byte{7}, 100)})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(full)
	f.Add([]byte{})
	f.Add(full[:len(full)-1])
	// a repeated body (the last wins), an unknown varint field, a descriptor twice (merged)
	var odd []byte
	odd = protowire.AppendTag(odd, fdDataBody, protowire.BytesType)
	odd = protowire.AppendBytes(odd, []byte("first"))
	odd = protowire.AppendTag(odd, 99, protowire.VarintType)
	odd = protowire.AppendVarint(odd, 5)
	odd = protowire.AppendTag(odd, fdDataBody, protowire.BytesType)
	odd = protowire.AppendBytes(odd, []byte("second"))
	odd = protowire.AppendTag(odd, fdDescriptor, protowire.BytesType)
	odd = protowire.AppendBytes(odd, []byte{0x12, 0x01, 'x'}) // cmd "x"
	odd = protowire.AppendTag(odd, fdDescriptor, protowire.BytesType)
	odd = protowire.AppendBytes(odd, []byte{0x1a, 0x01, 'p'})           // path ["p"]
	odd = protowire.AppendTag(odd, fdAppMetadata, protowire.VarintType) // a known field with the wrong wire type
	odd = protowire.AppendVarint(odd, 1)
	f.Add(odd)
	f.Add([]byte{0x12, 0x05, 'a'})              // a length past the end
	f.Add([]byte{0x0a, 0x02, 0x1a, 0x01, 0xff}) // a descriptor path that is not UTF-8
	codec := newFlightDataCodec()
	f.Fuzz(func(t *testing.T, b []byte) {
		var want flight.FlightData
		wantErr := protobuf.Unmarshal(b, &want)
		var got flight.FlightData
		gotErr := codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, &got)
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("protobuf says %v, the codec says %v", wantErr, gotErr)
		}
		if wantErr != nil {
			if !strings.HasPrefix(gotErr.Error(), "malformed FlightData message: ") {
				t.Fatalf("the codec's error %q does not say which message is malformed", gotErr)
			}
			return
		}
		if !bytes.Equal(got.DataHeader, want.DataHeader) || !bytes.Equal(got.AppMetadata, want.AppMetadata) || !bytes.Equal(got.DataBody, want.DataBody) {
			t.Fatalf("got header %x metadata %x body %x, want %x %x %x", got.DataHeader, got.AppMetadata, got.DataBody, want.DataHeader, want.AppMetadata, want.DataBody)
		}
		if (got.FlightDescriptor == nil) != (want.FlightDescriptor == nil) ||
			got.FlightDescriptor != nil && !protobuf.Equal(got.FlightDescriptor, want.FlightDescriptor) {
			t.Fatalf("got descriptor %v, want %v", got.FlightDescriptor, want.FlightDescriptor)
		}
	})
}

// TestFlightDataCodecOthers: every other message goes through protobuf both
// ways, and a FlightData's fields point into the received bytes (no copy).
func TestFlightDataCodecOthers(t *testing.T) {
	codec := newFlightDataCodec()
	in := &flight.Action{Type: "writers-list", Body: []byte("{}")}
	out, err := codec.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var back flight.Action
	if err := codec.Unmarshal(out, &back); err != nil || back.Type != in.Type || string(back.Body) != "{}" {
		t.Fatalf("Action round trip: %v, %v", &back, err)
	}
	raw, err := protobuf.Marshal(&flight.FlightData{DataBody: []byte("body"), DataHeader: []byte("hdr")})
	if err != nil {
		t.Fatal(err)
	}
	var fd flight.FlightData
	if err := unmarshalFlightData(raw, &fd); err != nil {
		t.Fatal(err)
	}
	if &raw[len(raw)-1] != &fd.DataBody[len(fd.DataBody)-1] || cap(fd.DataHeader) != len(fd.DataHeader) {
		t.Fatalf("the body was copied (or a field's capacity runs into the next): %q %q", fd.DataHeader, fd.DataBody)
	}
}
