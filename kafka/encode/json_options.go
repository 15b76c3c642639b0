package encode

import (
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
)

// decimal wraps a decimal encoder for DecimalAsNumber.
func (o *JSONOptions) decimal(enc valueEncoder) valueEncoder {
	if o == nil || !o.DecimalAsNumber {
		return enc
	}
	return unquoted{enc}
}

// unquoted writes what its encoder writes without the surrounding quotes:
// decimals as JSON numbers, with exactly the column's scale.
type unquoted struct{ valueEncoder }

func (u unquoted) appendValue(dst []byte, i int) []byte {
	start := len(dst)
	dst = u.valueEncoder.appendValue(dst, i)
	if n := len(dst); n-start >= 2 && dst[start] == '"' && dst[n-1] == '"' {
		copy(dst[start:], dst[start+1:n-1])
		dst = dst[:n-2]
	}
	return dst
}

// unixTimestampEncoder writes timestamps as integer Unix milliseconds or
// microseconds, floored.
type unixTimestampEncoder struct {
	validity
	vals   []int64
	unit   arrow.TimeUnit
	micros bool
}

func (e *unixTimestampEncoder) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[int64](arr)
}

func (e *unixTimestampEncoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, "null"...)
	}
	v := e.vals[i]
	target := arrow.Millisecond
	if e.micros {
		target = arrow.Microsecond
	}
	// TimeUnit is Second, Millisecond, Microsecond, Nanosecond: 10^3 apart.
	for u := e.unit; u < target; u++ {
		v *= 1_000
	}
	for u := e.unit; u > target; u-- {
		v = unixFloor(v, 1_000)
	}
	return strconv.AppendInt(dst, v, 10)
}

func unixFloor(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
