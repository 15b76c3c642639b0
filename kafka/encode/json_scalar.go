package encode

import (
	"math"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/float16"
)

// nullEncoder encodes the null type: every element is null.
type nullEncoder struct{}

func (nullEncoder) bind(arrow.Array) {}

func (nullEncoder) appendValue(dst []byte, _ int) []byte { return append(dst, "null"...) }

// boolEncoder encodes booleans as true/false.
type boolEncoder struct {
	validity
	bits []byte
	off  int
}

func (e *boolEncoder) bind(arr arrow.Array) {
	e.set(arr)
	e.bits, e.off = bufBytes(arr, 1), arr.Data().Offset()
}

func (e *boolEncoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, "null"...)
	}
	j := i + e.off
	if e.bits[j>>3]&(1<<(j&7)) != 0 {
		return append(dst, "true"...)
	}
	return append(dst, "false"...)
}

// intEncoder encodes signed integers (and durations) as JSON numbers.
type intEncoder[T int8 | int16 | int32 | int64] struct {
	validity
	vals []T
}

func (e *intEncoder[T]) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[T](arr)
}

func (e *intEncoder[T]) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, "null"...)
	}
	return appendInt(dst, int64(e.vals[i]))
}

// uintEncoder encodes unsigned integers as JSON numbers, uint64 exactly.
type uintEncoder[T uint8 | uint16 | uint32 | uint64] struct {
	validity
	vals []T
}

func (e *uintEncoder[T]) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[T](arr)
}

func (e *uintEncoder[T]) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, "null"...)
	}
	return appendUint(dst, uint64(e.vals[i]))
}

// float16Encoder encodes half floats by their float32 value.
type float16Encoder struct {
	validity
	vals []float16.Num
}

func (e *float16Encoder) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[float16.Num](arr)
}

func (e *float16Encoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, "null"...)
	}
	return appendFloat32(dst, e.vals[i].Float32())
}

// float32Encoder encodes float32 values the way encoding/json does.
type float32Encoder struct {
	validity
	vals []float32
}

func (e *float32Encoder) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[float32](arr)
}

func (e *float32Encoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, "null"...)
	}
	return appendFloat32(dst, e.vals[i])
}

// float64Encoder encodes float64 values the way encoding/json does.
type float64Encoder struct {
	validity
	vals []float64
}

func (e *float64Encoder) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[float64](arr)
}

func (e *float64Encoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, "null"...)
	}
	return appendFloat64(dst, e.vals[i])
}

// appendFloat64 appends f as encoding/json would (shortest round-trip text,
// exponent form below 1e-6 and from 1e21 on), or null for NaN and ±Inf,
// which JSON cannot represent.
func appendFloat64(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	if out, ok := appendShortDecimal(dst, f); ok {
		return out
	}
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		return trimExponent(strconv.AppendFloat(dst, f, 'e', -1, 64))
	}
	return strconv.AppendFloat(dst, f, 'f', -1, 64)
}

// appendShortDecimal is a fast path for the common float64 values that are
// decimals with at most 6 fraction digits and magnitude below 2^33 (prices,
// measurements, integers). For such f = RN(m/10^6), every other decimal that
// rounds to f needs more digits, because the spacing of doubles below 2^33
// (at most 2^-20) is finer than 10^-6; so the trimmed m/10^6 is exactly the
// shortest round-trip text strconv would produce, found without its digit
// generation. ok is false when f does not qualify.
func appendShortDecimal(dst []byte, f float64) (_ []byte, ok bool) {
	const scale = 1e6
	if !(math.Abs(f) < 1<<33) {
		return dst, false
	}
	m := int64(math.Round(f * scale)) // exact: |f * scale| < 2^53
	if float64(m)/scale != f {
		return dst, false
	}
	u := uint64(m)
	if math.Signbit(f) {
		dst = append(dst, '-') // also for -0, as encoding/json writes it
		u = -u
	}
	dst = appendUint(dst, u/scale)
	if frac := int64(u % scale); frac != 0 {
		digits := 6
		for frac%10 == 0 {
			frac /= 10
			digits--
		}
		n := len(dst)
		dst = append(dst, ".000000"[:digits+1]...)
		putFraction(dst[n+1:], frac)
	}
	return dst, true
}

// appendFloat32 is appendFloat64 for float32: the text is the shortest that
// round-trips at 32 bits, so float32(0.1) is written as 0.1.
func appendFloat32(dst []byte, f float32) []byte {
	f64 := float64(f)
	if math.IsNaN(f64) || math.IsInf(f64, 0) {
		return append(dst, "null"...)
	}
	if abs := float32(math.Abs(f64)); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		return trimExponent(strconv.AppendFloat(dst, f64, 'e', -1, 32))
	}
	return strconv.AppendFloat(dst, f64, 'f', -1, 32)
}

// trimExponent rewrites a two-digit negative exponent such as e-07 to e-7,
// as encoding/json does.
func trimExponent(b []byte) []byte {
	n := len(b)
	if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		b[n-2] = b[n-1]
		b = b[:n-1]
	}
	return b
}
