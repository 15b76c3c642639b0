// Package ipcheader reads what an Arrow IPC message header declares — its
// kind, rows, array lengths and the size of every buffer once decompressed —
// without decoding the body. A server checks those declarations against its
// limits before an IPC reader allocates anything for the message: a client
// controls every number in a header, and arrow-go's reader trusts them (it
// allocates a compressed buffer's declared uncompressed length up front).
//
// The header is the flatbuffer Message of format/Message.fbs (what Arrow
// Flight carries in FlightData.data_header). Only the fields named here are
// read; the arrow-go reader still validates the message as a whole.
package ipcheader

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	flatbuffers "github.com/google/flatbuffers/go"
)

// Kind is the type of an IPC message.
type Kind byte

// The kinds of IPC message (format/Message.fbs, union MessageHeader).
const (
	KindNone            Kind = 0
	KindSchema          Kind = 1
	KindDictionaryBatch Kind = 2
	KindRecordBatch     Kind = 3
	KindTensor          Kind = 4
	KindSparseTensor    Kind = 5
)

func (k Kind) String() string {
	switch k {
	case KindSchema:
		return "schema"
	case KindDictionaryBatch:
		return "dictionary batch"
	case KindRecordBatch:
		return "record batch"
	case KindTensor:
		return "tensor"
	case KindSparseTensor:
		return "sparse tensor"
	}
	return fmt.Sprintf("message type %d", byte(k))
}

// Header is what a record batch or dictionary batch message declares.
// For other kinds only Kind is set.
type Header struct {
	Kind Kind
	// Rows is the record batch's length (for a dictionary batch: the
	// dictionary's length).
	Rows int64
	// Nodes are the declared lengths of every array in the batch, in the
	// pre-order of the schema's fields (children after their parent).
	Nodes []int64
	// Compressed is true when the body's buffers are compressed (LZ4 frame
	// or ZSTD); each then starts with its uncompressed length.
	Compressed bool
	// DecodedBytes is the sum of the buffers' sizes once decoded: the
	// declared uncompressed length of a compressed buffer, the length of an
	// uncompressed one. It is what reading the message allocates.
	DecodedBytes int64
	// Buffers are where each buffer lies in the body.
	Buffers []Buffer
	// DictionaryID and IsDelta are set for a dictionary batch.
	DictionaryID int64
	IsDelta      bool
}

// Buffer is one buffer's place in a message body: Length bytes from Offset
// (for a compressed body, the 8-byte uncompressed length and the data).
type Buffer struct{ Offset, Length int64 }

// ErrMalformed is returned (wrapped) for a header or body that does not
// hold what it declares.
var ErrMalformed = errors.New("malformed Arrow IPC message")

// Read reads the header of one IPC message and, for a compressed batch, the
// uncompressed length prefixed to each buffer in body. It allocates only
// the Nodes slice (one int64 per declared array, bounded by the header's
// size) and never panics on malformed input.
func Read(header, body []byte) (h Header, err error) {
	defer func() {
		if r := recover(); r != nil { // an offset pointing outside the header
			h, err = Header{}, fmt.Errorf("%w: the header's flatbuffer is out of bounds (%v)", ErrMalformed, r)
		}
	}()
	if len(header) < 8 {
		return h, fmt.Errorf("%w: a header of %d bytes", ErrMalformed, len(header))
	}
	var msg flatbuffers.Table
	msg.Bytes = header
	msg.Pos = flatbuffers.GetUOffsetT(header)
	checkTable(&msg)
	if o := flatbuffers.UOffsetT(msg.Offset(6)); o != 0 { // header_type
		h.Kind = Kind(msg.GetByte(o + msg.Pos))
	}
	var union flatbuffers.Table
	o := flatbuffers.UOffsetT(msg.Offset(8)) // header
	if o == 0 || (h.Kind != KindRecordBatch && h.Kind != KindDictionaryBatch) {
		return h, nil
	}
	msg.Union(&union, o)
	checkTable(&union)
	batch := union
	if h.Kind == KindDictionaryBatch {
		if o := flatbuffers.UOffsetT(union.Offset(4)); o != 0 { // id
			h.DictionaryID = union.GetInt64(o + union.Pos)
		}
		if o := flatbuffers.UOffsetT(union.Offset(8)); o != 0 { // isDelta
			h.IsDelta = union.GetBool(o + union.Pos)
		}
		o := flatbuffers.UOffsetT(union.Offset(6)) // data: RecordBatch
		if o == 0 {
			return h, fmt.Errorf("%w: a dictionary batch without data", ErrMalformed)
		}
		batch.Pos = union.Indirect(o + union.Pos)
		checkTable(&batch)
	}
	return readBatch(h, &batch, body)
}

func readBatch(h Header, t *flatbuffers.Table, body []byte) (Header, error) {
	if o := flatbuffers.UOffsetT(t.Offset(4)); o != 0 { // length
		h.Rows = t.GetInt64(o + t.Pos)
	}
	if h.Rows < 0 {
		return h, fmt.Errorf("%w: a negative length (%d)", ErrMalformed, h.Rows)
	}
	if o := flatbuffers.UOffsetT(t.Offset(6)); o != 0 { // nodes: [FieldNode], 16 bytes each
		start, n := vector(t, o, 16)
		h.Nodes = make([]int64, n)
		for i := range h.Nodes {
			h.Nodes[i] = int64(binary.LittleEndian.Uint64(t.Bytes[start+16*i:]))
			if h.Nodes[i] < 0 {
				return h, fmt.Errorf("%w: array %d has a negative length (%d)", ErrMalformed, i, h.Nodes[i])
			}
		}
	}
	h.Compressed = flatbuffers.UOffsetT(t.Offset(10)) != 0 // compression
	if o := flatbuffers.UOffsetT(t.Offset(8)); o != 0 {    // buffers: [Buffer], 16 bytes each
		start, n := vector(t, o, 16)
		h.Buffers = make([]Buffer, n)
		for i := 0; i < n; i++ {
			off := int64(binary.LittleEndian.Uint64(t.Bytes[start+16*i:]))
			size := int64(binary.LittleEndian.Uint64(t.Bytes[start+16*i+8:]))
			h.Buffers[i] = Buffer{off, size}
			if off < 0 || size < 0 || off > int64(len(body)) || size > int64(len(body))-off {
				return h, fmt.Errorf("%w: buffer %d (offset %d, %d bytes) lies outside the %d-byte body", ErrMalformed, i, off, size, len(body))
			}
			decoded := size
			if h.Compressed && size > 0 {
				if size < 8 {
					return h, fmt.Errorf("%w: compressed buffer %d has %d bytes, less than its 8-byte length prefix", ErrMalformed, i, size)
				}
				switch u := int64(binary.LittleEndian.Uint64(body[off:])); {
				case u == -1: // stored uncompressed
					decoded = size - 8
				case u < 0:
					return h, fmt.Errorf("%w: compressed buffer %d declares a negative uncompressed length (%d)", ErrMalformed, i, u)
				default:
					decoded = u
				}
			}
			if h.DecodedBytes > math.MaxInt64-decoded {
				h.DecodedBytes = math.MaxInt64
			} else {
				h.DecodedBytes += decoded
			}
		}
	}
	return h, nil
}

// vector returns where a vector of structs of elemSize bytes starts and
// how many it has, after checking it lies inside the header.
func vector(t *flatbuffers.Table, o flatbuffers.UOffsetT, elemSize int) (start, n int) {
	start = int(t.Vector(o))
	n = t.VectorLen(o)
	if start < 0 || n < 0 || start > len(t.Bytes) || n > (len(t.Bytes)-start)/elemSize {
		panic(fmt.Sprintf("a vector of %d elements at %d in a %d-byte header", n, start, len(t.Bytes)))
	}
	return start, n
}

// checkTable makes sure a table's position and vtable lie inside the
// buffer, so the accessors below read inside it (they index a slice, which
// would panic, but the offsets they compute may also wrap).
func checkTable(t *flatbuffers.Table) {
	if int(t.Pos) < 0 || int(t.Pos)+4 > len(t.Bytes) {
		panic(fmt.Sprintf("a table at %d in a %d-byte header", t.Pos, len(t.Bytes)))
	}
	vt := int(t.Pos) - int(int32(flatbuffers.GetUOffsetT(t.Bytes[t.Pos:])))
	if vt < 0 || vt+4 > len(t.Bytes) {
		panic(fmt.Sprintf("a vtable at %d in a %d-byte header", vt, len(t.Bytes)))
	}
}

// Message is one encapsulated IPC message as Arrow Flight carries it: the
// flatbuffer header (FlightData.data_header) and the body (data_body).
type Message struct{ Header, Body []byte }

// SplitStream cuts an Arrow IPC stream (ipc.NewWriter's output) into its
// messages, so a test or tool can send or alter them one by one.
func SplitStream(b []byte) (msgs []Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			msgs, err = nil, fmt.Errorf("%w: %v", ErrMalformed, r)
		}
	}()
	for len(b) >= 8 {
		if binary.LittleEndian.Uint32(b) != 0xFFFFFFFF {
			return nil, fmt.Errorf("%w: no continuation marker", ErrMalformed)
		}
		n := int(binary.LittleEndian.Uint32(b[4:]))
		if n == 0 {
			break // end of stream
		}
		header := b[8 : 8+n]
		var msg flatbuffers.Table
		msg.Bytes, msg.Pos = header, flatbuffers.GetUOffsetT(header)
		checkTable(&msg)
		var bodyLen int
		if o := flatbuffers.UOffsetT(msg.Offset(10)); o != 0 { // bodyLength
			bodyLen = int(msg.GetInt64(o + msg.Pos))
		}
		msgs = append(msgs, Message{Header: header, Body: b[8+n : 8+n+bodyLen]})
		b = b[8+n+bodyLen:]
	}
	return msgs, nil
}
