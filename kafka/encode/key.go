package encode

import (
	"fmt"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Key extracts a Kafka record key from one column: string and binary values
// (also dictionary-encoded ones, such as pandas categoricals) as their
// bytes, integers as decimal text. A null value means "no key".
type Key struct {
	col int
	typ arrow.DataType
	enc keyEncoder
}

// keyEncoder appends the key bytes of element i of its bound array.
type keyEncoder interface {
	bind(arr arrow.Array)
	appendKey(dst []byte, i int) ([]byte, bool)
}

// NewKey builds a key extractor for the column called field. It returns a
// *FieldError when the column is missing or of a type that cannot serve
// as a key.
func NewKey(schema *arrow.Schema, field string) (*Key, error) {
	col, err := lookupColumn(schema, field)
	if err != nil {
		return nil, err
	}
	typ := schema.Field(col).Type
	enc, err := newKeyEncoder(typ, field)
	if err != nil {
		return nil, err
	}
	return &Key{col: col, typ: typ, enc: enc}, nil
}

// Bind points the extractor at rec's key column. rec must have the schema
// given to NewKey (JSON.Bind checks that); Bind panics if the column's
// type differs. rec is not retained.
func (k *Key) Bind(rec arrow.RecordBatch) {
	arr := rec.Column(k.col)
	if !arrow.TypeEqual(arr.DataType(), k.typ) {
		panic(fmt.Sprintf("encode: Key.Bind: key column %d is %s, want %s", k.col, arr.DataType(), k.typ))
	}
	k.enc.bind(arr)
}

// AppendKey appends the key of row to dst. ok is false, and dst is
// returned unchanged, when the value is null: the record has no key.
func (k *Key) AppendKey(dst []byte, row int) (out []byte, ok bool) {
	return k.enc.appendKey(dst, row)
}

func newKeyEncoder(dt arrow.DataType, path string) (keyEncoder, error) {
	switch dt := dt.(type) {
	case *arrow.StringType, *arrow.BinaryType:
		return &varKey[int32]{}, nil
	case *arrow.LargeStringType, *arrow.LargeBinaryType:
		return &varKey[int64]{}, nil
	case *arrow.StringViewType:
		return &stringViewKey{}, nil
	case *arrow.BinaryViewType:
		return &binaryViewKey{}, nil
	case *arrow.FixedSizeBinaryType:
		return &fixedSizeKey{width: dt.ByteWidth}, nil
	case *arrow.Int8Type:
		return &intKey[int8]{}, nil
	case *arrow.Int16Type:
		return &intKey[int16]{}, nil
	case *arrow.Int32Type:
		return &intKey[int32]{}, nil
	case *arrow.Int64Type:
		return &intKey[int64]{}, nil
	case *arrow.Uint8Type:
		return &uintKey[uint8]{}, nil
	case *arrow.Uint16Type:
		return &uintKey[uint16]{}, nil
	case *arrow.Uint32Type:
		return &uintKey[uint32]{}, nil
	case *arrow.Uint64Type:
		return &uintKey[uint64]{}, nil
	case *arrow.DictionaryType:
		if _, nested := dt.ValueType.(*arrow.DictionaryType); !nested {
			if vals, err := newKeyEncoder(dt.ValueType, path); err == nil {
				return newDictionaryKey(dt.IndexType, vals), nil
			}
		}
	}
	return nil, &FieldError{Field: path, Reason: fmt.Sprintf(
		"unsupported key type %s (want a string, binary or integer column)", dt)}
}

// varKey reads utf8/binary (O=int32) and large_utf8/large_binary (O=int64).
type varKey[O int32 | int64] struct {
	validity
	offs []O
	data []byte
}

func (e *varKey[O]) bind(arr arrow.Array) {
	e.set(arr)
	e.offs, e.data = offsets[O](arr), bufBytes(arr, 2)
}

func (e *varKey[O]) appendKey(dst []byte, i int) ([]byte, bool) {
	if e.null(i) {
		return dst, false
	}
	return append(dst, e.data[e.offs[i]:e.offs[i+1]]...), true
}

type stringViewKey struct {
	validity
	arr *array.StringView
}

func (e *stringViewKey) bind(arr arrow.Array) {
	e.set(arr)
	e.arr = arr.(*array.StringView)
}

func (e *stringViewKey) appendKey(dst []byte, i int) ([]byte, bool) {
	if e.null(i) {
		return dst, false
	}
	return append(dst, e.arr.Value(i)...), true
}

type binaryViewKey struct {
	validity
	arr *array.BinaryView
}

func (e *binaryViewKey) bind(arr arrow.Array) {
	e.set(arr)
	e.arr = arr.(*array.BinaryView)
}

func (e *binaryViewKey) appendKey(dst []byte, i int) ([]byte, bool) {
	if e.null(i) {
		return dst, false
	}
	return append(dst, e.arr.Value(i)...), true
}

type fixedSizeKey struct {
	validity
	width int
	data  []byte
	off   int
}

func (e *fixedSizeKey) bind(arr arrow.Array) {
	e.set(arr)
	e.data, e.off = bufBytes(arr, 1), arr.Data().Offset()
}

func (e *fixedSizeKey) appendKey(dst []byte, i int) ([]byte, bool) {
	if e.null(i) {
		return dst, false
	}
	start := (e.off + i) * e.width
	return append(dst, e.data[start:start+e.width]...), true
}

type intKey[T int8 | int16 | int32 | int64] struct {
	validity
	vals []T
}

func (e *intKey[T]) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[T](arr)
}

func (e *intKey[T]) appendKey(dst []byte, i int) ([]byte, bool) {
	if e.null(i) {
		return dst, false
	}
	return strconv.AppendInt(dst, int64(e.vals[i]), 10), true
}

type uintKey[T uint8 | uint16 | uint32 | uint64] struct {
	validity
	vals []T
}

func (e *uintKey[T]) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[T](arr)
}

func (e *uintKey[T]) appendKey(dst []byte, i int) ([]byte, bool) {
	if e.null(i) {
		return dst, false
	}
	return strconv.AppendUint(dst, uint64(e.vals[i]), 10), true
}

func newDictionaryKey(index arrow.DataType, vals keyEncoder) keyEncoder {
	switch index.ID() {
	case arrow.INT8:
		return &dictionaryKey[int8]{vals: vals}
	case arrow.INT16:
		return &dictionaryKey[int16]{vals: vals}
	case arrow.INT32:
		return &dictionaryKey[int32]{vals: vals}
	case arrow.INT64:
		return &dictionaryKey[int64]{vals: vals}
	case arrow.UINT8:
		return &dictionaryKey[uint8]{vals: vals}
	case arrow.UINT16:
		return &dictionaryKey[uint16]{vals: vals}
	case arrow.UINT32:
		return &dictionaryKey[uint32]{vals: vals}
	default:
		return &dictionaryKey[uint64]{vals: vals}
	}
}

// dictionaryKey reads dictionary-encoded keys; a null index or a null
// dictionary entry both mean "no key".
type dictionaryKey[I indexType] struct {
	validity
	idx  []I
	vals keyEncoder
}

func (e *dictionaryKey[I]) bind(arr arrow.Array) {
	e.set(arr)
	e.idx = values[I](arr)
	if arr.Len() > 0 {
		e.vals.bind(arr.(*array.Dictionary).Dictionary())
	}
}

func (e *dictionaryKey[I]) appendKey(dst []byte, i int) ([]byte, bool) {
	if e.null(i) {
		return dst, false
	}
	return e.vals.appendKey(dst, int(e.idx[i]))
}
