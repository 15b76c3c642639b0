package encode

import (
	"encoding/base64"
	"encoding/binary"
	"unicode/utf8"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// stringEncoder encodes utf8 (O=int32) and large_utf8 (O=int64) values as
// escaped JSON strings.
type stringEncoder[O int32 | int64] struct {
	validity
	offs []O
	data []byte
}

func (e *stringEncoder[O]) bind(arr arrow.Array) {
	e.set(arr)
	e.offs, e.data = offsets[O](arr), bufBytes(arr, 2)
}

func (e *stringEncoder[O]) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, "null"...)
	}
	return appendStringBytes(dst, e.data[e.offs[i]:e.offs[i+1]])
}

// stringViewEncoder encodes string_view values as escaped JSON strings.
type stringViewEncoder struct {
	validity
	arr *array.StringView
}

func (e *stringViewEncoder) bind(arr arrow.Array) {
	e.set(arr)
	e.arr = arr.(*array.StringView)
}

func (e *stringViewEncoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, "null"...)
	}
	return appendString(dst, e.arr.Value(i))
}

// binaryEncoder encodes binary (O=int32) and large_binary (O=int64) values
// as standard padded base64 strings.
type binaryEncoder[O int32 | int64] struct {
	validity
	offs []O
	data []byte
}

func (e *binaryEncoder[O]) bind(arr arrow.Array) {
	e.set(arr)
	e.offs, e.data = offsets[O](arr), bufBytes(arr, 2)
}

func (e *binaryEncoder[O]) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, "null"...)
	}
	return appendBase64(dst, e.data[e.offs[i]:e.offs[i+1]])
}

// fixedSizeBinaryEncoder encodes fixed_size_binary values as base64.
type fixedSizeBinaryEncoder struct {
	validity
	width int
	data  []byte
	off   int
}

func (e *fixedSizeBinaryEncoder) bind(arr arrow.Array) {
	e.set(arr)
	e.data, e.off = bufBytes(arr, 1), arr.Data().Offset()
}

func (e *fixedSizeBinaryEncoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, "null"...)
	}
	start := (e.off + i) * e.width
	return appendBase64(dst, e.data[start:start+e.width])
}

// binaryViewEncoder encodes binary_view values as base64.
type binaryViewEncoder struct {
	validity
	arr *array.BinaryView
}

func (e *binaryViewEncoder) bind(arr arrow.Array) {
	e.set(arr)
	e.arr = arr.(*array.BinaryView)
}

func (e *binaryViewEncoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, "null"...)
	}
	return appendBase64(dst, e.arr.Value(i))
}

func appendBase64(dst, b []byte) []byte {
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, b)
	return append(dst, '"')
}

// appendString appends s as a quoted, escaped JSON string; see
// appendStringBytes.
func appendString(dst []byte, s string) []byte {
	// The bytes are only read, so viewing the string's memory is safe.
	return appendStringBytes(dst, unsafe.Slice(unsafe.StringData(s), len(s)))
}

// safeASCII[b] is true for ASCII bytes that are copied unchanged.
var safeASCII = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// appendStringBytes appends s as a quoted JSON string, escaped exactly like
// encoding/json with HTML escaping off: `"` and `\` are backslashed,
// \b \f \n \r \t use short escapes, other control characters \u00XX, U+2028
// and U+2029 are escaped for JavaScript, and invalid UTF-8 becomes \ufffd.
// Runs of safe bytes are found 8 at a time and copied in one go.
func appendStringBytes(dst, s []byte) []byte {
	dst = append(dst, '"')
	start, i := 0, 0
	for i < len(s) {
		for i+8 <= len(s) && !needsEscape8(binary.LittleEndian.Uint64(s[i:])) {
			i += 8
		}
		if i == len(s) {
			break
		}
		if b := s[i]; b < utf8.RuneSelf {
			if safeASCII[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// needsEscape8 reports whether any of the 8 bytes packed in x is a control
// character, '"', '\\' or non-ASCII (bit tricks from "Bit Twiddling Hacks").
func needsEscape8(x uint64) bool {
	const lsb, msb = 0x0101010101010101, 0x8080808080808080
	quote, bslash := x^(lsb*'"'), x^(lsb*'\\')
	ctl := (x - lsb*0x20) &^ x
	q := (quote - lsb) &^ quote
	bs := (bslash - lsb) &^ bslash
	return (ctl|q|bs|x)&msb != 0
}
