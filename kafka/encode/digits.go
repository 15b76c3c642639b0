package encode

import (
	"math/bits"
	"slices"
)

// appendUint appends the decimal digits of u. Unlike strconv.AppendUint it
// writes straight into dst instead of copying from a scratch buffer, which
// matters for the short numbers that fill most rows.
func appendUint(dst []byte, u uint64) []byte {
	if u < 10 {
		return append(dst, byte('0'+u))
	}
	n := decimalLen(u)
	l := len(dst)
	dst = slices.Grow(dst, n)[:l+n]
	b := dst[l:]
	for n >= 2 {
		n -= 2
		q := u / 100
		put2(b[n:], int64(u-q*100))
		u = q
	}
	if n == 1 {
		b[0] = byte('0' + u)
	}
	return dst
}

// appendDigits19 appends u < 10^19 as exactly 19 digits, zero-padded: a
// full chunk of a wide decimal's magnitude below its top chunk.
func appendDigits19(dst []byte, u uint64) []byte {
	l := len(dst)
	dst = slices.Grow(dst, 19)[:l+19]
	b := dst[l : l+19]
	for n := 17; n >= 1; n -= 2 {
		q := u / 100
		put2(b[n:], int64(u-q*100))
		u = q
	}
	b[0] = byte('0' + u)
	return dst
}

// appendInt appends the decimal digits of v with its sign.
func appendInt(dst []byte, v int64) []byte {
	u := uint64(v)
	if v < 0 {
		dst = append(dst, '-')
		u = -u
	}
	return appendUint(dst, u)
}

var pow10 = [...]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

// decimalLen returns the number of decimal digits of u > 0.
func decimalLen(u uint64) int {
	// 1233/4096 approximates log10(2); the guess is exact or one too high.
	n := (bits.Len64(u)*1233)>>12 + 1
	if u < pow10[n-1] {
		n--
	}
	return n
}
