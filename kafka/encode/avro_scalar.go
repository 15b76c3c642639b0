package encode

import (
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
	"unicode/utf8"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/decimal256"
	"github.com/apache/arrow-go/v18/arrow/float16"
)

// avroNulls is embedded in the encoders: the validity of the bound array
// and the null mode of the position (see avroEncoder.setNulls).
type avroNulls struct {
	validity
	union bool   // ["null", T]: a null is branch 0, a value is preceded by branch 1
	zero  []byte // plain T: a null is written as T's zero value
}

func (n *avroNulls) setNulls(union bool, zero []byte) { n.union, n.zero = union, zero }

// appendNull appends what a null is written as.
func (n *avroNulls) appendNull(dst []byte) []byte {
	if n.union {
		return append(dst, 0)
	}
	return append(dst, n.zero...)
}

// appendAvroLong appends v as a zigzag varint (Avro int and long).
func appendAvroLong(dst []byte, v int64) []byte {
	u := uint64(v<<1) ^ uint64(v>>63)
	if u < 1<<7 {
		return append(dst, byte(u))
	}
	if u < 1<<14 {
		return append(dst, byte(u)|0x80, byte(u>>7))
	}
	return appendVarint(dst, u)
}

// appendVarint appends u >= 1<<14 as a varint, writing into grown space.
func appendVarint(dst []byte, u uint64) []byte {
	n := len(dst)
	dst = slices.Grow(dst, binary.MaxVarintLen64)
	b := dst[n : n+binary.MaxVarintLen64]
	k := 0
	for ; u >= 0x80 && k < len(b)-1; k++ {
		b[k] = byte(u) | 0x80
		u >>= 7
	}
	b[k] = byte(u)
	return dst[:n+k+1]
}

// appendAvroBytes appends b as Avro bytes: its length, then b.
func appendAvroBytes(dst, b []byte) []byte {
	return append(appendAvroLong(dst, int64(len(b))), b...)
}

// appendAvroString appends s as an Avro string. Bytes that are not part of
// valid UTF-8 are replaced with U+FFFD each, as the JSON encoder does.
func appendAvroString(dst, s []byte) []byte {
	if utf8.Valid(s) {
		return appendAvroBytes(dst, s)
	}
	n := 0
	for k := 0; k < len(s); {
		r, size := utf8.DecodeRune(s[k:])
		if r == utf8.RuneError && size == 1 {
			n += 3
		} else {
			n += size
		}
		k += size
	}
	dst = appendAvroLong(dst, int64(n))
	for k := 0; k < len(s); {
		r, size := utf8.DecodeRune(s[k:])
		if r == utf8.RuneError && size == 1 {
			dst = utf8.AppendRune(dst, utf8.RuneError)
		} else {
			dst = append(dst, s[k:k+size]...)
		}
		k += size
	}
	return dst
}

// avroNullEncoder encodes the null type: nothing.
type avroNullEncoder struct{}

func (avroNullEncoder) bind(arrow.Array)                     {}
func (avroNullEncoder) setNulls(bool, []byte)                {}
func (avroNullEncoder) appendValue(dst []byte, _ int) []byte { return dst }

// avroBoolEncoder encodes booleans as one byte, 0 or 1.
type avroBoolEncoder struct {
	avroNulls
	bits []byte
	off  int
}

func (e *avroBoolEncoder) bind(arr arrow.Array) {
	e.set(arr)
	e.bits, e.off = bufBytes(arr, 1), arr.Data().Offset()
}

func (e *avroBoolEncoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return e.appendNull(dst)
	}
	j := i + e.off
	v := e.bits[j>>3] >> (j & 7) & 1
	if e.union {
		return append(dst, 2, v)
	}
	return append(dst, v)
}

// avroIntEncoder encodes integers (and dates, times, timestamps and
// durations stored in the Avro unit) as zigzag varints.
type avroIntEncoder[T int8 | int16 | int32 | int64 | uint8 | uint16 | uint32] struct {
	avroNulls
	vals []T
}

func (e *avroIntEncoder[T]) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[T](arr)
}

func (e *avroIntEncoder[T]) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return e.appendNull(dst)
	}
	if e.union {
		dst = append(dst, 2)
	}
	return appendAvroLong(dst, int64(e.vals[i]))
}

// avroScaledEncoder encodes integers converted to another unit: multiplied
// by mul (saturating) or floor-divided by div, then clamped to the int32
// range when the Avro type is int.
type avroScaledEncoder[T int32 | int64] struct {
	avroNulls
	vals     []T
	mul, div int64
	lo, hi   int64
}

func newAvroScaled[T int32 | int64](mul, div int64, toInt bool) *avroScaledEncoder[T] {
	e := &avroScaledEncoder[T]{mul: mul, div: div, lo: math.MinInt64, hi: math.MaxInt64}
	if toInt {
		e.lo, e.hi = math.MinInt32, math.MaxInt32
	}
	return e
}

func (e *avroScaledEncoder[T]) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[T](arr)
}

func (e *avroScaledEncoder[T]) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return e.appendNull(dst)
	}
	if e.union {
		dst = append(dst, 2)
	}
	v := int64(e.vals[i])
	switch {
	case e.mul != 1:
		switch {
		case v > math.MaxInt64/e.mul:
			v = math.MaxInt64
		case v < math.MinInt64/e.mul:
			v = math.MinInt64
		default:
			v *= e.mul
		}
	case e.div != 1:
		v, _ = floorDivMod(v, e.div)
	}
	return appendAvroLong(dst, min(max(v, e.lo), e.hi))
}

// avroFloat16Encoder encodes half floats as Avro floats (exactly).
type avroFloat16Encoder struct {
	avroNulls
	vals []float16.Num
}

func (e *avroFloat16Encoder) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[float16.Num](arr)
}

func (e *avroFloat16Encoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return e.appendNull(dst)
	}
	if e.union {
		dst = append(dst, 2)
	}
	return binary.LittleEndian.AppendUint32(dst, math.Float32bits(e.vals[i].Float32()))
}

// avroFloat32Encoder encodes floats as 4 little-endian bytes.
type avroFloat32Encoder struct {
	avroNulls
	vals []uint32
}

func (e *avroFloat32Encoder) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[uint32](arr)
}

func (e *avroFloat32Encoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return e.appendNull(dst)
	}
	if e.union {
		dst = append(dst, 2)
	}
	return binary.LittleEndian.AppendUint32(dst, e.vals[i])
}

// avroFloat64Encoder encodes doubles as 8 little-endian bytes.
type avroFloat64Encoder struct {
	avroNulls
	vals []uint64
}

func (e *avroFloat64Encoder) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[uint64](arr)
}

func (e *avroFloat64Encoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return e.appendNull(dst)
	}
	if e.union {
		dst = append(dst, 2)
	}
	return binary.LittleEndian.AppendUint64(dst, e.vals[i])
}

// avroStringEncoder encodes utf8 (O=int32) and large_utf8 (O=int64).
type avroStringEncoder[O int32 | int64] struct {
	avroNulls
	offs []O
	data []byte
}

func (e *avroStringEncoder[O]) bind(arr arrow.Array) {
	e.set(arr)
	e.offs, e.data = offsets[O](arr), bufBytes(arr, 2)
}

func (e *avroStringEncoder[O]) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return e.appendNull(dst)
	}
	if e.union {
		dst = append(dst, 2)
	}
	return appendAvroString(dst, e.data[e.offs[i]:e.offs[i+1]])
}

// avroStringViewEncoder encodes string_view values.
type avroStringViewEncoder struct {
	avroNulls
	arr *array.StringView
}

func (e *avroStringViewEncoder) bind(arr arrow.Array) {
	e.set(arr)
	e.arr = arr.(*array.StringView)
}

func (e *avroStringViewEncoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return e.appendNull(dst)
	}
	if e.union {
		dst = append(dst, 2)
	}
	s := e.arr.Value(i)
	// The bytes are only read, so viewing the string's memory is safe.
	return appendAvroString(dst, unsafe.Slice(unsafe.StringData(s), len(s)))
}

// avroBinaryEncoder encodes binary (O=int32) and large_binary (O=int64).
type avroBinaryEncoder[O int32 | int64] struct {
	avroNulls
	offs []O
	data []byte
}

func (e *avroBinaryEncoder[O]) bind(arr arrow.Array) {
	e.set(arr)
	e.offs, e.data = offsets[O](arr), bufBytes(arr, 2)
}

func (e *avroBinaryEncoder[O]) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return e.appendNull(dst)
	}
	if e.union {
		dst = append(dst, 2)
	}
	return appendAvroBytes(dst, e.data[e.offs[i]:e.offs[i+1]])
}

// avroBinaryViewEncoder encodes binary_view values.
type avroBinaryViewEncoder struct {
	avroNulls
	arr *array.BinaryView
}

func (e *avroBinaryViewEncoder) bind(arr arrow.Array) {
	e.set(arr)
	e.arr = arr.(*array.BinaryView)
}

func (e *avroBinaryViewEncoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return e.appendNull(dst)
	}
	if e.union {
		dst = append(dst, 2)
	}
	return appendAvroBytes(dst, e.arr.Value(i))
}

// avroFixedEncoder encodes fixed_size_binary values as Avro fixed: the
// bytes without a length.
type avroFixedEncoder struct {
	avroNulls
	width int
	data  []byte
	off   int
}

func (e *avroFixedEncoder) bind(arr arrow.Array) {
	e.set(arr)
	e.data, e.off = bufBytes(arr, 1), arr.Data().Offset()
}

func (e *avroFixedEncoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return e.appendNull(dst)
	}
	if e.union {
		dst = append(dst, 2)
	}
	start := (e.off + i) * e.width
	return append(dst, e.data[start:start+e.width]...)
}

// Decimals (and uint64) are Avro bytes holding the unscaled value as
// minimal big-endian two's complement.

// appendAvroTwos appends the Avro bytes of the big-endian two's-complement
// integer b (at least one byte), dropping redundant leading sign bytes.
func appendAvroTwos(dst, b []byte) []byte {
	k := 0
	for k < len(b)-1 && ((b[k] == 0 && b[k+1]&0x80 == 0) || (b[k] == 0xff && b[k+1]&0x80 != 0)) {
		k++
	}
	return appendAvroBytes(dst, b[k:])
}

// avroUint64Encoder encodes uint64 as a decimal(20, 0).
type avroUint64Encoder struct {
	avroNulls
	vals []uint64
}

func (e *avroUint64Encoder) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[uint64](arr)
}

func (e *avroUint64Encoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return e.appendNull(dst)
	}
	if e.union {
		dst = append(dst, 2)
	}
	var b [9]byte // a leading zero keeps values >= 2^63 positive
	binary.BigEndian.PutUint64(b[1:], e.vals[i])
	return appendAvroTwos(dst, b[:])
}

// avroDecimalEncoder is an encoder of Arrow decimals; a negative Arrow
// scale gives it a scaler.
type avroDecimalEncoder interface {
	avroEncoder
	setScaler(s *avroDecimalScaler)
}

// avroSmallDecimalEncoder encodes decimal32 and decimal64 values.
type avroSmallDecimalEncoder[T int32 | int64] struct {
	avroNulls
	vals   []T
	scaler *avroDecimalScaler
}

func (e *avroSmallDecimalEncoder[T]) setScaler(s *avroDecimalScaler) { e.scaler = s }

func (e *avroSmallDecimalEncoder[T]) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[T](arr)
}

func (e *avroSmallDecimalEncoder[T]) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return e.appendNull(dst)
	}
	if e.union {
		dst = append(dst, 2)
	}
	v := int64(e.vals[i])
	if e.scaler != nil {
		return e.scaler.append(dst, []uint64{uint64(v)})
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	return appendAvroTwos(dst, b[:])
}

// avroDecimal128Encoder encodes decimal128 values.
type avroDecimal128Encoder struct {
	avroNulls
	vals   []decimal128.Num
	scaler *avroDecimalScaler
}

func (e *avroDecimal128Encoder) setScaler(s *avroDecimalScaler) { e.scaler = s }

func (e *avroDecimal128Encoder) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[decimal128.Num](arr)
}

func (e *avroDecimal128Encoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return e.appendNull(dst)
	}
	if e.union {
		dst = append(dst, 2)
	}
	v := e.vals[i]
	if e.scaler != nil {
		return e.scaler.append(dst, []uint64{v.LowBits(), uint64(v.HighBits())})
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:], uint64(v.HighBits()))
	binary.BigEndian.PutUint64(b[8:], v.LowBits())
	return appendAvroTwos(dst, b[:])
}

// avroDecimal256Encoder encodes decimal256 values.
type avroDecimal256Encoder struct {
	avroNulls
	vals   []decimal256.Num
	scaler *avroDecimalScaler
}

func (e *avroDecimal256Encoder) setScaler(s *avroDecimalScaler) { e.scaler = s }

func (e *avroDecimal256Encoder) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[decimal256.Num](arr)
}

func (e *avroDecimal256Encoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return e.appendNull(dst)
	}
	if e.union {
		dst = append(dst, 2)
	}
	w := e.vals[i].Array() // little-endian words
	if e.scaler != nil {
		return e.scaler.append(dst, w[:])
	}
	var b [32]byte
	for k := range 4 {
		binary.BigEndian.PutUint64(b[8*(3-k):], w[k])
	}
	return appendAvroTwos(dst, b[:])
}

// avroDecimalScaler multiplies unscaled values by 10^k (for an Arrow scale of
// -k) in preallocated scratch space, so that it does not allocate.
type avroDecimalScaler struct {
	factors []uint64 // 10^19 repeated, then the remaining power of ten
	words   []uint64 // scratch: little-endian magnitude words
	bytes   []byte   // scratch: big-endian two's complement
}

func newAvroDecimalScaler(k int32) *avroDecimalScaler {
	s := &avroDecimalScaler{}
	for ; k >= 19; k -= 19 {
		s.factors = append(s.factors, 1e19)
	}
	if k > 0 {
		s.factors = append(s.factors, pow10[k])
	}
	// 4 input words, one per factor (each < 2^64), one for the sign.
	n := 4 + len(s.factors) + 1
	s.words = make([]uint64, 0, n)
	s.bytes = make([]byte, 8*n)
	return s
}

// append appends the Avro bytes of the two's-complement value held in the
// little-endian words in (sign-extended from the top word) times 10^k. It
// does not retain in.
func (s *avroDecimalScaler) append(dst []byte, in []uint64) []byte {
	neg := int64(in[len(in)-1]) < 0
	w := append(s.words[:0], in...)
	if neg {
		avroNegate(w)
	}
	for _, f := range s.factors {
		var carry uint64
		for k := range w {
			hi, lo := bits.Mul64(w[k], f)
			var c uint64
			w[k], c = bits.Add64(lo, carry, 0)
			carry = hi + c
		}
		if carry != 0 {
			w = append(w, carry)
		}
	}
	w = append(w, 0) // room for the sign bit
	if neg {
		avroNegate(w)
	}
	b := s.bytes[:8*len(w)]
	for k, x := range w {
		binary.BigEndian.PutUint64(b[8*(len(w)-1-k):], x)
	}
	return appendAvroTwos(dst, b)
}

// avroNegate negates the little-endian two's-complement words w in place.
func avroNegate(w []uint64) {
	carry := uint64(1)
	for k := range w {
		w[k], carry = bits.Add64(^w[k], 0, carry)
	}
}
