package encode

import (
	"math/bits"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/decimal256"
)

// Decimals are written as JSON strings with exactly the column's scale
// ("12.30", "-0.05"), because JSON numbers would lose precision in most
// consumers. A negative scale appends zeros ("1200").

// smallDecimalEncoder encodes decimal32 and decimal64 values.
type smallDecimalEncoder[T int32 | int64] struct {
	validity
	vals  []T
	scale int32
}

func (e *smallDecimalEncoder[T]) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[T](arr)
}

func (e *smallDecimalEncoder[T]) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, "null"...)
	}
	return appendDecimalInt64(dst, int64(e.vals[i]), e.scale)
}

// decimal128Encoder encodes decimal128 values.
type decimal128Encoder struct {
	validity
	vals  []decimal128.Num
	scale int32
}

func (e *decimal128Encoder) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[decimal128.Num](arr)
}

func (e *decimal128Encoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, "null"...)
	}
	v := e.vals[i]
	lo, hi := v.LowBits(), uint64(v.HighBits())
	if hi == signExtension(lo) {
		return appendDecimalInt64(dst, int64(lo), e.scale)
	}
	words := [4]uint64{lo, hi}
	return appendDecimalWords(dst, words[:2], e.scale)
}

// decimal256Encoder encodes decimal256 values.
type decimal256Encoder struct {
	validity
	vals  []decimal256.Num
	scale int32
}

func (e *decimal256Encoder) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[decimal256.Num](arr)
}

func (e *decimal256Encoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, "null"...)
	}
	words := e.vals[i].Array()
	if ext := signExtension(words[0]); words[1] == ext && words[2] == ext && words[3] == ext {
		return appendDecimalInt64(dst, int64(words[0]), e.scale)
	}
	return appendDecimalWords(dst, words[:], e.scale)
}

// signExtension returns the high word that makes lo a valid int64 when
// sign-extended: all zeros or all ones.
func signExtension(lo uint64) uint64 { return uint64(int64(lo) >> 63) }

// appendDecimalInt64 is the fast path for unscaled values that fit in int64.
func appendDecimalInt64(dst []byte, v int64, scale int32) []byte {
	var buf [20]byte
	u := uint64(v)
	if v < 0 {
		u = -u
	}
	return appendScaled(dst, appendUint(buf[:0], u), v < 0, scale)
}

// appendDecimalWords handles unscaled values of up to 256 bits held as
// little-endian two's-complement words (modified in place). It divides by
// 10^19 word by word instead of going through math/big, so it does not
// allocate either.
func appendDecimalWords(dst []byte, w []uint64, scale int32) []byte {
	neg := int64(w[len(w)-1]) < 0
	if neg { // negate: invert and add one
		carry := uint64(1)
		for k := range w {
			w[k], carry = bits.Add64(^w[k], 0, carry)
		}
	}
	const chunk = 1e19   // largest power of ten below 2^64
	var chunks [4]uint64 // 2^256 < 10^78 needs at most 4 full chunks below the top
	n := 0
	for {
		for len(w) > 1 && w[len(w)-1] == 0 {
			w = w[:len(w)-1]
		}
		if len(w) == 1 && w[0] < chunk {
			break
		}
		var rem uint64
		for k := len(w) - 1; k >= 0; k-- {
			w[k], rem = bits.Div64(rem, w[k], chunk)
		}
		chunks[n] = rem
		n++
	}
	var buf [80]byte
	digits := appendUint(buf[:0], w[0])
	for k := n - 1; k >= 0; k-- {
		digits = appendDigits19(digits, chunks[k])
	}
	return appendScaled(dst, digits, neg, scale)
}

// appendScaled appends the quoted decimal text of the unscaled magnitude
// digits with the given sign and scale.
func appendScaled(dst, digits []byte, neg bool, scale int32) []byte {
	dst = append(dst, '"')
	if neg {
		dst = append(dst, '-')
	}
	switch n := int32(len(digits)); {
	case scale <= 0:
		dst = append(dst, digits...)
		if len(digits) > 1 || digits[0] != '0' {
			for range -scale {
				dst = append(dst, '0')
			}
		}
	case n > scale:
		dst = append(dst, digits[:n-scale]...)
		dst = append(dst, '.')
		dst = append(dst, digits[n-scale:]...)
	default:
		dst = append(dst, '0', '.')
		for range scale - n {
			dst = append(dst, '0')
		}
		dst = append(dst, digits...)
	}
	return append(dst, '"')
}
