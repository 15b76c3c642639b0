package encode

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// appendAvroItems appends elements [start, end) of enc's array as one Avro
// array block (count, items) followed by the terminating empty block.
func appendAvroItems(dst []byte, enc avroEncoder, start, end int) []byte {
	if n := end - start; n > 0 {
		dst = appendAvroLong(dst, int64(n))
		for j := start; j < end; j++ {
			dst = enc.appendValue(dst, j)
		}
	}
	return append(dst, 0)
}

// avroListEncoder encodes list (O=int32) and large_list (O=int64) values.
type avroListEncoder[O int32 | int64] struct {
	avroNulls
	offs []O
	elem avroEncoder
}

func (e *avroListEncoder[O]) bind(arr arrow.Array) {
	e.set(arr)
	e.offs = offsets[O](arr)
	e.elem.bind(arr.(array.ListLike).ListValues())
}

func (e *avroListEncoder[O]) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return e.appendNull(dst)
	}
	if e.union {
		dst = append(dst, 2)
	}
	return appendAvroItems(dst, e.elem, int(e.offs[i]), int(e.offs[i+1]))
}

// avroListViewEncoder encodes list_view (O=int32) and large_list_view
// (O=int64) values.
type avroListViewEncoder[O int32 | int64] struct {
	avroNulls
	offs, sizes []O
	elem        avroEncoder
}

func (e *avroListViewEncoder[O]) bind(arr arrow.Array) {
	e.set(arr)
	e.offs, e.sizes = values[O](arr), valuesOf[O](arr.Data(), 2)
	e.elem.bind(arr.(array.ListLike).ListValues())
}

func (e *avroListViewEncoder[O]) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return e.appendNull(dst)
	}
	if e.union {
		dst = append(dst, 2)
	}
	start := int(e.offs[i])
	return appendAvroItems(dst, e.elem, start, start+int(e.sizes[i]))
}

// avroFixedSizeListEncoder encodes fixed_size_list values.
type avroFixedSizeListEncoder struct {
	avroNulls
	n    int
	off  int
	elem avroEncoder
}

func (e *avroFixedSizeListEncoder) bind(arr arrow.Array) {
	e.set(arr)
	e.off = arr.Data().Offset()
	e.elem.bind(arr.(*array.FixedSizeList).ListValues())
}

func (e *avroFixedSizeListEncoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return e.appendNull(dst)
	}
	if e.union {
		dst = append(dst, 2)
	}
	start := (e.off + i) * e.n
	return appendAvroItems(dst, e.elem, start, start+e.n)
}

// avroStructEncoder encodes struct values as records: the fields in order.
type avroStructEncoder struct {
	avroNulls
	fields []avroEncoder
}

func (e *avroStructEncoder) bind(arr arrow.Array) {
	e.set(arr)
	s := arr.(*array.Struct)
	for k, f := range e.fields {
		// Field(k) is already sliced to the struct's offset; a struct
		// element that is null is caught before its fields are read.
		f.bind(s.Field(k))
	}
}

func (e *avroStructEncoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return e.appendNull(dst)
	}
	if e.union {
		dst = append(dst, 2)
	}
	for _, f := range e.fields {
		dst = f.appendValue(dst, i)
	}
	return dst
}

// avroMapEncoder encodes maps, either as Avro maps (string keys) or as
// arrays of key/value records (other keys): both are blocks of key, value
// pairs, in entry order.
type avroMapEncoder struct {
	avroNulls
	offs       []int32
	keys, vals avroEncoder // keys are non-nullable: a null key is written as zero ("")
}

func (e *avroMapEncoder) bind(arr arrow.Array) {
	e.set(arr)
	e.offs = offsets[int32](arr)
	// Field(k) of the entries struct is sliced to the struct's offset,
	// unlike array.Map's Keys and Items.
	entries := arr.(*array.Map).ListValues().(*array.Struct)
	e.keys.bind(entries.Field(0))
	e.vals.bind(entries.Field(1))
}

func (e *avroMapEncoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return e.appendNull(dst)
	}
	if e.union {
		dst = append(dst, 2)
	}
	start, end := int(e.offs[i]), int(e.offs[i+1])
	if n := end - start; n > 0 {
		dst = appendAvroLong(dst, int64(n))
		for j := start; j < end; j++ {
			dst = e.keys.appendValue(dst, j)
			dst = e.vals.appendValue(dst, j)
		}
	}
	return append(dst, 0)
}

func newAvroDictionaryEncoder(dt *arrow.DictionaryType, vals avroEncoder, path string) (avroEncoder, error) {
	switch dt.IndexType.ID() {
	case arrow.INT8:
		return &avroDictionaryEncoder[int8]{vals: vals}, nil
	case arrow.INT16:
		return &avroDictionaryEncoder[int16]{vals: vals}, nil
	case arrow.INT32:
		return &avroDictionaryEncoder[int32]{vals: vals}, nil
	case arrow.INT64:
		return &avroDictionaryEncoder[int64]{vals: vals}, nil
	case arrow.UINT8:
		return &avroDictionaryEncoder[uint8]{vals: vals}, nil
	case arrow.UINT16:
		return &avroDictionaryEncoder[uint16]{vals: vals}, nil
	case arrow.UINT32:
		return &avroDictionaryEncoder[uint32]{vals: vals}, nil
	case arrow.UINT64:
		return &avroDictionaryEncoder[uint64]{vals: vals}, nil
	}
	return nil, unsupported(path, dt)
}

// avroDictionaryEncoder encodes dictionary-encoded values as the values
// they stand for. When the dictionary is no longer than the batch, each
// entry is encoded once per batch (union branch included) and rows copy
// the encoded bytes.
type avroDictionaryEncoder[I indexType] struct {
	avroNulls
	idx  []I
	vals avroEncoder // same null mode: a null entry is written like a null index
	dictCache
}

func (e *avroDictionaryEncoder[I]) setNulls(union bool, zero []byte) {
	e.avroNulls.setNulls(union, zero)
	e.vals.setNulls(union, zero)
}

func (e *avroDictionaryEncoder[I]) bind(arr arrow.Array) {
	e.set(arr)
	e.idx = values[I](arr)
	e.bindDictionary(arr, e.vals.bind, e.vals)
}

func (e *avroDictionaryEncoder[I]) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return e.appendNull(dst)
	}
	return e.appendEntry(dst, e.vals, int(e.idx[i]))
}

func newAvroRunEndEncoder(dt *arrow.RunEndEncodedType, vals avroEncoder, path string) (avroEncoder, error) {
	switch dt.RunEnds().ID() {
	case arrow.INT16:
		return &avroRunEndEncoder[int16]{vals: vals}, nil
	case arrow.INT32:
		return &avroRunEndEncoder[int32]{vals: vals}, nil
	case arrow.INT64:
		return &avroRunEndEncoder[int64]{vals: vals}, nil
	}
	return nil, unsupported(path, dt)
}

// avroRunEndEncoder encodes run-end-encoded values as the values they stand
// for (the values array holds the nulls). Rows are usually read in order,
// so it remembers the last run found and only binary-searches the run ends
// when a row falls outside it.
type avroRunEndEncoder[R int16 | int32 | int64] struct {
	runCursor[R]
	vals avroEncoder
}

func (e *avroRunEndEncoder[R]) setNulls(union bool, zero []byte) { e.vals.setNulls(union, zero) }

func (e *avroRunEndEncoder[R]) bind(arr arrow.Array) {
	r := arr.(*array.RunEndEncoded)
	e.reset(r)
	e.vals.bind(r.Values())
}

func (e *avroRunEndEncoder[R]) appendValue(dst []byte, i int) []byte {
	return e.vals.appendValue(dst, e.physical(i))
}
