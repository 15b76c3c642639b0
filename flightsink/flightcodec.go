package flightsink

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	protobuf "google.golang.org/protobuf/proto"
)

// flightDataCodec is the server's gRPC codec: protobuf for every message,
// except that an incoming FlightData is read with one copy instead of
// three. gRPC's protobuf codec gathers a message's frames into a pooled
// buffer (zeroed first), then protobuf copies each bytes field out of it
// into fresh memory; for a 10 MB record batch that is 20 MB written and
// 10 MB newly allocated per message, several percent of a stream's CPU.
// Here the frames are gathered once into memory of the message's own, and
// data_header, app_metadata and data_body point into it (arrow-go reads
// an uncompressed body in place, so the batch's columns then do too).
//
// Decoding follows protobuf's rules for FlightData: fields in any order,
// the last of a repeated bytes field wins, repeated descriptors merge,
// unknown fields and known fields of an unexpected wire type are skipped,
// malformed input fails. FuzzFlightDataCodec checks it against
// proto.Unmarshal.
type flightDataCodec struct{ proto encoding.CodecV2 }

// newFlightDataCodec wraps gRPC's own protobuf codec.
func newFlightDataCodec() flightDataCodec {
	return flightDataCodec{proto: encoding.GetCodecV2(proto.Name)}
}

// Name is protobuf's: clients see no difference.
func (c flightDataCodec) Name() string { return proto.Name }

// Marshal is protobuf's.
func (c flightDataCodec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

// Unmarshal decodes a FlightData in place (see flightDataCodec) and every
// other message with protobuf.
func (c flightDataCodec) Unmarshal(data mem.BufferSlice, v any) error {
	fd, ok := v.(*flight.FlightData)
	if !ok {
		return c.proto.Unmarshal(data, v)
	}
	return unmarshalFlightData(data.Materialize(), fd)
}

// malformed is what a FlightData that is not valid protobuf gets, naming
// the field at fault (gRPC reports it as Internal, as it does protobuf's
// errors).
func malformed(num protowire.Number, code int) error {
	if code >= 0 { // a field number past protobuf's maximum
		return fmt.Errorf("malformed FlightData message: field number %d is over %d", num, protowire.MaxValidNumber)
	}
	return fmt.Errorf("malformed FlightData message: field %d: %w", num, protowire.ParseError(code))
}

// FlightData's field numbers (Flight.proto).
const (
	fdDescriptor  = 1
	fdDataHeader  = 2
	fdAppMetadata = 3
	fdDataBody    = 1000
)

// unmarshalFlightData decodes b into fd, whose bytes fields then alias b.
func unmarshalFlightData(b []byte, fd *flight.FlightData) error {
	fd.Reset()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num > protowire.MaxValidNumber {
			return malformed(num, n)
		}
		b = b[n:]
		if typ != protowire.BytesType || num != fdDescriptor && num != fdDataHeader && num != fdAppMetadata && num != fdDataBody {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return malformed(num, n)
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return malformed(num, n)
		}
		b = b[n:]
		v = v[:len(v):len(v)] // an append by a reader must not run into the next field
		switch num {
		case fdDescriptor:
			if fd.FlightDescriptor == nil {
				fd.FlightDescriptor = &flight.FlightDescriptor{}
			}
			if err := (protobuf.UnmarshalOptions{Merge: true}).Unmarshal(v, fd.FlightDescriptor); err != nil {
				return fmt.Errorf("malformed FlightData message: flight_descriptor: %w", err)
			}
		case fdDataHeader:
			fd.DataHeader = v
		case fdAppMetadata:
			fd.AppMetadata = v
		case fdDataBody:
			fd.DataBody = v
		}
	}
	return nil
}
