package encode

import (
	"encoding/binary"
	"math"
	"unicode/utf8"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/float16"
	"google.golang.org/protobuf/encoding/protowire"
)

// pbField is embedded in the encoders: the validity of the bound array and
// the field the encoder writes (see pbEncoder.setField).
type pbField struct {
	validity
	tag      []byte // the field's tag, wire type included
	implicit bool   // proto3 implicit presence: a zero value is not written
}

func (f *pbField) setField(tag []byte, implicit bool) { f.tag, f.implicit = tag, implicit }
func (f *pbField) isNull(i int) bool                  { return f.null(i) }

// pbTag appends a field's tag: one byte for fields 1 to 15, without a
// call to copy.
func pbTag(dst, tag []byte) []byte {
	if len(tag) == 1 {
		return append(dst, tag[0])
	}
	return append(dst, tag...)
}

// pbOpen reserves one byte for the length of what follows; pbClose writes
// it, moving what follows when the length needs more than one byte.
func pbOpen(dst []byte) ([]byte, int) { return append(dst, 0), len(dst) }

var pbPad [binary.MaxVarintLen64]byte

func pbClose(dst []byte, at int) []byte {
	n := len(dst) - at - 1
	if n < 0x80 {
		dst[at] = byte(n)
		return dst
	}
	k := protowire.SizeVarint(uint64(n))
	dst = append(dst, pbPad[:k-1]...)
	copy(dst[at+k:], dst[at+1:at+1+n])
	protowire.AppendVarint(dst[at:at], uint64(n)) // in place: dst has the room
	return dst
}

// pbZero reports whether an encoded value is its type's zero value: a
// varint 0, an empty string or bytes (length 0), a fixed +0.0.
func pbZero(v []byte) bool {
	for _, c := range v {
		if c != 0 {
			return false
		}
	}
	return true
}

// appendPBString appends s as a protobuf string: its length, then its
// bytes, each byte that is not part of valid UTF-8 replaced by U+FFFD.
func appendPBString(dst, s []byte) []byte {
	if utf8.Valid(s) {
		return append(protowire.AppendVarint(dst, uint64(len(s))), s...)
	}
	dst, at := pbOpen(dst)
	for k := 0; k < len(s); {
		r, size := utf8.DecodeRune(s[k:])
		if r == utf8.RuneError && size == 1 {
			dst = utf8.AppendRune(dst, utf8.RuneError)
		} else {
			dst = append(dst, s[k:k+size]...)
		}
		k += size
	}
	return pbClose(dst, at)
}

// pbNullEncoder encodes the null type: NullValue, whose only value is 0,
// so the field is never written.
type pbNullEncoder struct{ pbField }

func (e *pbNullEncoder) bind(arrow.Array)                     {}
func (e *pbNullEncoder) isNull(int) bool                      { return true }
func (e *pbNullEncoder) appendField(dst []byte, _ int) []byte { return dst }
func (e *pbNullEncoder) appendValue(dst []byte, _ int) []byte { return append(dst, 0) }

// pbBoolEncoder encodes booleans as varints 0 and 1.
type pbBoolEncoder struct {
	pbField
	bits []byte
	off  int
}

func (e *pbBoolEncoder) bind(arr arrow.Array) {
	e.set(arr)
	e.bits, e.off = bufBytes(arr, 1), arr.Data().Offset()
}

func (e *pbBoolEncoder) value(i int) byte {
	j := i + e.off
	return e.bits[j>>3] >> (j & 7) & 1
}

func (e *pbBoolEncoder) appendField(dst []byte, i int) []byte {
	if e.null(i) {
		return dst
	}
	v := e.value(i)
	if v == 0 && e.implicit {
		return dst
	}
	return append(pbTag(dst, e.tag), v)
}

func (e *pbBoolEncoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, 0)
	}
	return append(dst, e.value(i))
}

// pbVarintEncoder encodes integers (and dates and times of day) as
// varints: signed ones sign-extended to 64 bits, as protobuf's int32 and
// int64 are.
type pbVarintEncoder[T int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64] struct {
	pbField
	vals []T
}

func (e *pbVarintEncoder[T]) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[T](arr)
}

func (e *pbVarintEncoder[T]) appendField(dst []byte, i int) []byte {
	if e.null(i) {
		return dst
	}
	v := e.vals[i]
	if v == 0 && e.implicit {
		return dst
	}
	return protowire.AppendVarint(pbTag(dst, e.tag), uint64(int64(v)))
}

func (e *pbVarintEncoder[T]) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, 0)
	}
	return protowire.AppendVarint(dst, uint64(int64(e.vals[i])))
}

// pbDaysEncoder encodes date64 (milliseconds) as int32 days, floored and
// clamped to the int32 range.
type pbDaysEncoder struct {
	pbField
	vals []int64
}

func (e *pbDaysEncoder) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[int64](arr)
}

func (e *pbDaysEncoder) days(i int) int64 {
	d, _ := floorDivMod(e.vals[i], 86_400_000)
	return min(max(d, math.MinInt32), math.MaxInt32)
}

func (e *pbDaysEncoder) appendField(dst []byte, i int) []byte {
	if e.null(i) {
		return dst
	}
	d := e.days(i)
	if d == 0 && e.implicit {
		return dst
	}
	return protowire.AppendVarint(pbTag(dst, e.tag), uint64(d))
}

func (e *pbDaysEncoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, 0)
	}
	return protowire.AppendVarint(dst, uint64(e.days(i)))
}

// pbFixed32Encoder encodes floats as 4 little-endian bytes.
type pbFixed32Encoder struct {
	pbField
	vals []uint32
}

func (e *pbFixed32Encoder) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[uint32](arr)
}

func (e *pbFixed32Encoder) appendField(dst []byte, i int) []byte {
	if e.null(i) {
		return dst
	}
	v := e.vals[i]
	if v == 0 && e.implicit { // +0.0; -0.0 is written, as protobuf does
		return dst
	}
	return binary.LittleEndian.AppendUint32(pbTag(dst, e.tag), v)
}

func (e *pbFixed32Encoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, 0, 0, 0, 0)
	}
	return binary.LittleEndian.AppendUint32(dst, e.vals[i])
}

// pbFloat16Encoder encodes half floats as floats (exactly).
type pbFloat16Encoder struct {
	pbField
	vals []float16.Num
}

func (e *pbFloat16Encoder) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[float16.Num](arr)
}

func (e *pbFloat16Encoder) appendField(dst []byte, i int) []byte {
	if e.null(i) {
		return dst
	}
	v := math.Float32bits(e.vals[i].Float32())
	if v == 0 && e.implicit {
		return dst
	}
	return binary.LittleEndian.AppendUint32(pbTag(dst, e.tag), v)
}

func (e *pbFloat16Encoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, 0, 0, 0, 0)
	}
	return binary.LittleEndian.AppendUint32(dst, math.Float32bits(e.vals[i].Float32()))
}

// pbFixed64Encoder encodes doubles as 8 little-endian bytes.
type pbFixed64Encoder struct {
	pbField
	vals []uint64
}

func (e *pbFixed64Encoder) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[uint64](arr)
}

func (e *pbFixed64Encoder) appendField(dst []byte, i int) []byte {
	if e.null(i) {
		return dst
	}
	v := e.vals[i]
	if v == 0 && e.implicit {
		return dst
	}
	return binary.LittleEndian.AppendUint64(pbTag(dst, e.tag), v)
}

func (e *pbFixed64Encoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	}
	return binary.LittleEndian.AppendUint64(dst, e.vals[i])
}

// pbStringEncoder encodes utf8 and binary (O=int32), large_utf8 and
// large_binary (O=int64) as strings (utf8: invalid bytes replaced) or
// bytes.
type pbStringEncoder[O int32 | int64] struct {
	pbField
	offs []O
	data []byte
	utf8 bool
}

func (e *pbStringEncoder[O]) bind(arr arrow.Array) {
	e.set(arr)
	e.offs, e.data = offsets[O](arr), bufBytes(arr, 2)
}

func (e *pbStringEncoder[O]) appendField(dst []byte, i int) []byte {
	if e.null(i) {
		return dst
	}
	v := e.data[e.offs[i]:e.offs[i+1]]
	if len(v) == 0 && e.implicit {
		return dst
	}
	return e.appendBytes(pbTag(dst, e.tag), v)
}

func (e *pbStringEncoder[O]) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, 0)
	}
	return e.appendBytes(dst, e.data[e.offs[i]:e.offs[i+1]])
}

func (e *pbStringEncoder[O]) appendBytes(dst, v []byte) []byte {
	if e.utf8 {
		return appendPBString(dst, v)
	}
	return append(protowire.AppendVarint(dst, uint64(len(v))), v...)
}

// pbViewEncoder encodes string_view (utf8) and binary_view values.
type pbViewEncoder struct {
	pbField
	arr  *array.BinaryView
	sarr *array.StringView
	utf8 bool
}

func (e *pbViewEncoder) bind(arr arrow.Array) {
	e.set(arr)
	if e.utf8 {
		e.sarr = arr.(*array.StringView)
	} else {
		e.arr = arr.(*array.BinaryView)
	}
}

func (e *pbViewEncoder) get(i int) []byte {
	if e.utf8 {
		s := e.sarr.Value(i)
		// The bytes are only read, so viewing the string's memory is safe.
		return unsafe.Slice(unsafe.StringData(s), len(s))
	}
	return e.arr.Value(i)
}

func (e *pbViewEncoder) appendField(dst []byte, i int) []byte {
	if e.null(i) {
		return dst
	}
	v := e.get(i)
	if len(v) == 0 && e.implicit {
		return dst
	}
	return e.appendBytes(pbTag(dst, e.tag), v)
}

func (e *pbViewEncoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, 0)
	}
	return e.appendBytes(dst, e.get(i))
}

func (e *pbViewEncoder) appendBytes(dst, v []byte) []byte {
	if e.utf8 {
		return appendPBString(dst, v)
	}
	return append(protowire.AppendVarint(dst, uint64(len(v))), v...)
}

// pbFixedBinaryEncoder encodes fixed_size_binary values as bytes.
type pbFixedBinaryEncoder struct {
	pbField
	width int
	data  []byte
	off   int
}

func (e *pbFixedBinaryEncoder) bind(arr arrow.Array) {
	e.set(arr)
	e.data, e.off = bufBytes(arr, 1), arr.Data().Offset()
}

func (e *pbFixedBinaryEncoder) appendField(dst []byte, i int) []byte {
	if e.null(i) || (e.width == 0 && e.implicit) {
		return dst
	}
	return e.appendValue(pbTag(dst, e.tag), i)
}

func (e *pbFixedBinaryEncoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, 0)
	}
	start := (e.off + i) * e.width
	return append(protowire.AppendVarint(dst, uint64(e.width)), e.data[start:start+e.width]...)
}

// pbDecimalEncoder encodes decimals as strings: the JSON encoder's exact
// text without its quotes.
type pbDecimalEncoder struct {
	pbField
	text valueEncoder
}

func (e *pbDecimalEncoder) bind(arr arrow.Array) {
	e.set(arr)
	e.text.bind(arr)
}

func (e *pbDecimalEncoder) appendField(dst []byte, i int) []byte {
	if e.null(i) {
		return dst // the text of a value is never empty: no zero to skip
	}
	return e.appendValue(pbTag(dst, e.tag), i)
}

func (e *pbDecimalEncoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, 0)
	}
	dst, at := pbOpen(dst)
	dst = e.text.appendValue(dst, i) // "…"
	n := len(dst)
	copy(dst[at+1:], dst[at+2:n-1])
	return pbClose(dst[:n-2], at)
}

// pbTimeEncoder encodes timestamps as google.protobuf.Timestamp (seconds
// floored, nanos in [0, 1e9)) and durations as google.protobuf.Duration
// (seconds and nanos truncated toward zero, of the same sign).
type pbTimeEncoder struct {
	pbField
	vals     []int64
	perSec   int64 // values per second
	nanos    int64 // nanoseconds per value
	duration bool
}

func newPbTime(unit arrow.TimeUnit, duration bool) *pbTimeEncoder {
	perSec, _ := unitScale(unit)
	return &pbTimeEncoder{perSec: perSec, nanos: 1_000_000_000 / perSec, duration: duration}
}

func (e *pbTimeEncoder) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[int64](arr)
}

func (e *pbTimeEncoder) appendField(dst []byte, i int) []byte {
	if e.null(i) {
		return dst
	}
	return e.appendValue(pbTag(dst, e.tag), i)
}

func (e *pbTimeEncoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, 0)
	}
	v := e.vals[i]
	var sec, frac int64
	if e.duration {
		sec, frac = v/e.perSec, v%e.perSec
	} else {
		sec, frac = floorDivMod(v, e.perSec)
	}
	nanos := frac * e.nanos
	at := len(dst)
	dst = append(dst, 0) // the length: at most 2 + 10 + 10 bytes
	if sec != 0 {
		dst = protowire.AppendVarint(append(dst, 0x08), uint64(sec)) // field 1, varint
	}
	if nanos != 0 {
		dst = protowire.AppendVarint(append(dst, 0x10), uint64(nanos)) // field 2, varint
	}
	dst[at] = byte(len(dst) - at - 1)
	return dst
}
