package encode

import (
	"encoding/binary"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
)

// JSON encodes rows of record batches that share one schema as JSON
// objects, one object per row, columns in schema order.
//
// Build it once per stream with NewJSON, call Bind for every batch and then
// AppendRow for each of the batch's rows.
type JSON struct {
	schema *arrow.Schema
	cols   []column
}

// column is one top-level column: its precomputed key prefix (`{"id":` for
// the first column, `,"name":` for the others) and its value encoder.
type column struct {
	prefix keyBytes
	enc    valueEncoder
}

// keyBytes is a member's key prefix, kept also as two little-endian words
// when it is at most 16 bytes long: appending it is then two stores instead
// of a call to memmove, which a 40-column row would make 40 times.
type keyBytes struct {
	b      []byte
	w0, w1 uint64
	short  bool // len(b) <= 16: w0 and w1 hold it, zero-padded
}

func newKeyBytes(b []byte) keyBytes {
	k := keyBytes{b: b, short: len(b) <= 16}
	if k.short {
		var w [16]byte
		copy(w[:], b)
		k.w0, k.w1 = binary.LittleEndian.Uint64(w[:8]), binary.LittleEndian.Uint64(w[8:])
	}
	return k
}

// appendTo appends the prefix to dst. With 16 bytes of room it stores both
// words and keeps only the prefix's length: the bytes past it, within dst's
// capacity, are scratch that the next append overwrites.
func (k *keyBytes) appendTo(dst []byte) []byte {
	n := len(dst)
	if !k.short || cap(dst)-n < 16 {
		return append(dst, k.b...)
	}
	d := dst[n : n+16]
	binary.LittleEndian.PutUint64(d, k.w0)
	binary.LittleEndian.PutUint64(d[8:], k.w1)
	return dst[:n+len(k.b)]
}

// valueEncoder appends the JSON text of one element of the array it was
// last bound to. Implementations are built for one Arrow type; bind must be
// called with an array of exactly that type.
type valueEncoder interface {
	// bind points the encoder at arr's buffers, once per batch.
	bind(arr arrow.Array)
	// appendValue appends element i of the bound array, writing null for
	// null elements.
	appendValue(dst []byte, i int) []byte
}

// NewJSON builds a row encoder for schema. It returns a *FieldError naming
// the first column (dotted path for nested fields) whose type cannot be
// encoded, so that a stream can be rejected before any row is written.
func NewJSON(schema *arrow.Schema) (*JSON, error) {
	return NewJSONWithOptions(schema, JSONOptions{})
}

// JSONOptions change how some types are written; the zero value is the
// default mapping (docs/json-mapping.md).
type JSONOptions struct {
	// TimestampFormat is "rfc3339" (default: "2026-01-02T03:04:05.678Z"),
	// "unix_millis" or "unix_micros" (integers, floored).
	TimestampFormat string
	// DecimalAsNumber writes decimals as JSON numbers (12.30) instead of
	// strings ("12.30"): exact text, but many consumers parse numbers as
	// float64 and lose digits.
	DecimalAsNumber bool
}

// NewJSONWithOptions is NewJSON with non-default options.
func NewJSONWithOptions(schema *arrow.Schema, opts JSONOptions) (*JSON, error) {
	switch opts.TimestampFormat {
	case "", "rfc3339", "unix_millis", "unix_micros":
	default:
		return nil, fmt.Errorf("timestamp format %q is not one of rfc3339, unix_millis, unix_micros", opts.TimestampFormat)
	}
	o := &opts
	e := &JSON{schema: schema, cols: make([]column, schema.NumFields())}
	for i, f := range schema.Fields() {
		enc, err := newValueEncoder(f.Type, f.Name, o)
		if err != nil {
			return nil, err
		}
		e.cols[i] = column{prefix: newKeyBytes(keyPrefix(i == 0, f.Name)), enc: enc}
	}
	return e, nil
}

// keyPrefix returns the bytes written before a member's value: `{"name":`
// for the first member of an object, `,"name":` for the others.
func keyPrefix(first bool, name string) []byte {
	sep := byte(',')
	if first {
		sep = '{'
	}
	return append(appendString([]byte{sep}, name), ':')
}

// Bind points the encoder at the columns of rec, whose schema must equal
// the one given to NewJSON. It does not retain rec: the caller keeps rec
// alive (and unreleased) while calling AppendRow for its rows.
func (e *JSON) Bind(rec arrow.RecordBatch) error {
	if err := checkSchema(e.schema, rec.Schema()); err != nil {
		return err
	}
	for i := range e.cols {
		e.cols[i].enc.bind(rec.Column(i))
	}
	return nil
}

// AppendRow appends row (0 <= row < NumRows) of the bound batch to dst as
// one JSON object and returns the extended slice. Nothing is allocated when
// dst has room for the row; bytes of dst past its length (within its
// capacity) may be used as scratch, those before it are never touched.
func (e *JSON) AppendRow(dst []byte, row int) []byte {
	if len(e.cols) == 0 {
		return append(dst, '{', '}')
	}
	for i := range e.cols {
		c := &e.cols[i]
		dst = c.prefix.appendTo(dst)
		dst = c.enc.appendValue(dst, row)
	}
	return append(dst, '}')
}

// checkSchema reports how got differs from want, or nil when they are equal.
func checkSchema(want, got *arrow.Schema) error {
	if got == want || got.Equal(want) {
		return nil
	}
	if got.NumFields() != want.NumFields() {
		return fmt.Errorf("encode: batch has %d columns, stream schema has %d", got.NumFields(), want.NumFields())
	}
	for i, w := range want.Fields() {
		if g := got.Field(i); !g.Equal(w) {
			return fmt.Errorf("encode: batch column %d is %s, stream schema has %s", i, g, w)
		}
	}
	return fmt.Errorf("encode: batch schema does not match stream schema")
}

// lookupColumn returns the index of the column called name, or a
// *FieldError listing the available columns.
func lookupColumn(schema *arrow.Schema, name string) (int, error) {
	if idx := schema.FieldIndices(name); len(idx) > 0 {
		return idx[0], nil
	}
	var names []byte
	for i, f := range schema.Fields() {
		if i > 0 {
			names = append(names, ", "...)
		}
		names = append(names, f.Name...)
	}
	return 0, &FieldError{Field: name, Reason: fmt.Sprintf("no such column (columns: %s)", names)}
}

// validity is the null bitmap of a bound array.
type validity struct {
	bits []byte // nil when the array has no nulls
	off  int    // the array's offset into bits
}

func (v *validity) set(arr arrow.Array) {
	v.bits, v.off = nil, 0
	if arr.NullN() > 0 {
		v.bits, v.off = arr.NullBitmapBytes(), arr.Data().Offset()
	}
}

func (v *validity) null(i int) bool {
	if v.bits == nil {
		return false
	}
	j := i + v.off
	return v.bits[j>>3]&(1<<(j&7)) == 0
}

// bufBytes returns the bytes of buffer i of arr, or nil when it is absent
// (as it may be for empty arrays).
func bufBytes(arr arrow.Array, i int) []byte {
	bufs := arr.Data().Buffers()
	if i >= len(bufs) || bufs[i] == nil {
		return nil
	}
	return bufs[i].Bytes()
}

// values returns the offset-adjusted values buffer (buffer 1) of a
// fixed-width array, or nil for an empty array.
func values[T arrow.FixedWidthType](arr arrow.Array) []T {
	return valuesOf[T](arr.Data(), 1)
}

func valuesOf[T arrow.FixedWidthType](data arrow.ArrayData, i int) []T {
	if data.Len() == 0 {
		return nil
	}
	return arrow.GetValues[T](data, i)
}

// offsets returns the offset-adjusted offsets buffer (len+1 entries) of a
// variable-length array, or nil for an empty array.
func offsets[O int32 | int64](arr arrow.Array) []O {
	data := arr.Data()
	if data.Len() == 0 {
		return nil
	}
	return arrow.GetOffsets[O](data, 1)
}

// newValueEncoder builds the encoder for values of type dt found at path
// (used in errors).
func newValueEncoder(dt arrow.DataType, path string, o *JSONOptions) (valueEncoder, error) {
	switch dt := dt.(type) {
	case *arrow.NullType:
		return nullEncoder{}, nil
	case *arrow.BooleanType:
		return &boolEncoder{}, nil
	case *arrow.Int8Type:
		return &intEncoder[int8]{}, nil
	case *arrow.Int16Type:
		return &intEncoder[int16]{}, nil
	case *arrow.Int32Type:
		return &intEncoder[int32]{}, nil
	case *arrow.Int64Type:
		return &intEncoder[int64]{}, nil
	case *arrow.Uint8Type:
		return &uintEncoder[uint8]{}, nil
	case *arrow.Uint16Type:
		return &uintEncoder[uint16]{}, nil
	case *arrow.Uint32Type:
		return &uintEncoder[uint32]{}, nil
	case *arrow.Uint64Type:
		return &uintEncoder[uint64]{}, nil
	case *arrow.Float16Type:
		return &float16Encoder{}, nil
	case *arrow.Float32Type:
		return &float32Encoder{}, nil
	case *arrow.Float64Type:
		return &float64Encoder{}, nil
	case *arrow.Decimal32Type:
		return o.decimal(&smallDecimalEncoder[int32]{scale: dt.Scale}), nil
	case *arrow.Decimal64Type:
		return o.decimal(&smallDecimalEncoder[int64]{scale: dt.Scale}), nil
	case *arrow.Decimal128Type:
		return o.decimal(&decimal128Encoder{scale: dt.Scale}), nil
	case *arrow.Decimal256Type:
		return o.decimal(&decimal256Encoder{scale: dt.Scale}), nil
	case *arrow.StringType:
		return &stringEncoder[int32]{}, nil
	case *arrow.LargeStringType:
		return &stringEncoder[int64]{}, nil
	case *arrow.StringViewType:
		return &stringViewEncoder{}, nil
	case *arrow.BinaryType:
		return &binaryEncoder[int32]{}, nil
	case *arrow.LargeBinaryType:
		return &binaryEncoder[int64]{}, nil
	case *arrow.FixedSizeBinaryType:
		return &fixedSizeBinaryEncoder{width: dt.ByteWidth}, nil
	case *arrow.BinaryViewType:
		return &binaryViewEncoder{}, nil
	case *arrow.Date32Type:
		return &date32Encoder{}, nil
	case *arrow.Date64Type:
		return &date64Encoder{}, nil
	case *arrow.Time32Type:
		return newTimeOfDayEncoder[int32](dt.Unit), nil
	case *arrow.Time64Type:
		return newTimeOfDayEncoder[int64](dt.Unit), nil
	case *arrow.TimestampType:
		if o.TimestampFormat == "unix_millis" || o.TimestampFormat == "unix_micros" {
			return &unixTimestampEncoder{unit: dt.Unit, micros: o.TimestampFormat == "unix_micros"}, nil
		}
		return newTimestampEncoder(dt.Unit), nil
	case *arrow.DurationType:
		return &intEncoder[int64]{}, nil
	case *arrow.ListType:
		return newListEncoder[int32](dt.ElemField(), path, o)
	case *arrow.LargeListType:
		return newListEncoder[int64](dt.ElemField(), path, o)
	case *arrow.ListViewType:
		return newListViewEncoder[int32](dt.ElemField(), path, o)
	case *arrow.LargeListViewType:
		return newListViewEncoder[int64](dt.ElemField(), path, o)
	case *arrow.FixedSizeListType:
		return newFixedSizeListEncoder(dt, path, o)
	case *arrow.StructType:
		return newStructEncoder(dt, path, o)
	case *arrow.MapType:
		return newMapEncoder(dt, path, o)
	case *arrow.DictionaryType:
		return newDictionaryEncoder(dt, path, o)
	case *arrow.RunEndEncodedType:
		return newRunEndEncoder(dt, path, o)
	}
	return nil, unsupported(path, dt)
}
