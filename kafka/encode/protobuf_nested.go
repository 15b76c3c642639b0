package encode

import (
	"encoding/binary"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"google.golang.org/protobuf/encoding/protowire"
)

// pbMessageEncoder encodes struct values as messages: the fields in order.
type pbMessageEncoder struct {
	pbField
	fields []pbEncoder
}

func (e *pbMessageEncoder) bind(arr arrow.Array) {
	e.set(arr)
	s := arr.(*array.Struct)
	for k, f := range e.fields {
		// Field(k) is already sliced to the struct's offset; a struct
		// element that is null is caught before its fields are read.
		f.bind(s.Field(k))
	}
}

func (e *pbMessageEncoder) appendField(dst []byte, i int) []byte {
	if e.null(i) {
		return dst
	}
	return e.appendValue(pbTag(dst, e.tag), i)
}

func (e *pbMessageEncoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, 0)
	}
	dst, at := pbOpen(dst)
	for _, f := range e.fields {
		dst = f.appendField(dst, i)
	}
	return pbClose(dst, at)
}

// pbWrapperEncoder encodes a list or map where protobuf cannot repeat it
// (a list element, a map key or value) as a message whose field 1 holds it.
type pbWrapperEncoder struct {
	pbField
	inner pbEncoder // the repeated field 1
}

func (e *pbWrapperEncoder) bind(arr arrow.Array) { e.inner.bind(arr) }
func (e *pbWrapperEncoder) isNull(i int) bool    { return e.inner.isNull(i) }

func (e *pbWrapperEncoder) appendField(dst []byte, i int) []byte {
	if e.inner.isNull(i) {
		return dst
	}
	return e.appendValue(pbTag(dst, e.tag), i)
}

func (e *pbWrapperEncoder) appendValue(dst []byte, i int) []byte {
	dst, at := pbOpen(dst)
	dst = e.inner.appendField(dst, i)
	return pbClose(dst, at)
}

// pbSpans reads the element range of each list of a bound list array.
type pbSpans interface {
	bind(arr arrow.Array)
	span(i int) (start, end int)
}

// pbOffsetSpans reads list (O=int32) and large_list (O=int64) offsets.
type pbOffsetSpans[O int32 | int64] struct{ offs []O }

func (s *pbOffsetSpans[O]) bind(arr arrow.Array) { s.offs = offsets[O](arr) }
func (s *pbOffsetSpans[O]) span(i int) (int, int) {
	return int(s.offs[i]), int(s.offs[i+1])
}

// pbViewSpans reads list_view (O=int32) and large_list_view (O=int64)
// offsets and sizes.
type pbViewSpans[O int32 | int64] struct{ offs, sizes []O }

func (s *pbViewSpans[O]) bind(arr arrow.Array) {
	s.offs, s.sizes = values[O](arr), valuesOf[O](arr.Data(), 2)
}

func (s *pbViewSpans[O]) span(i int) (int, int) {
	start := int(s.offs[i])
	return start, start + int(s.sizes[i])
}

// pbFixedSpans computes fixed_size_list ranges.
type pbFixedSpans struct{ n, off int }

func (s *pbFixedSpans) bind(arr arrow.Array) { s.off = arr.Data().Offset() }
func (s *pbFixedSpans) span(i int) (int, int) {
	start := (s.off + i) * s.n
	return start, start + s.n
}

// pbListEncoder encodes lists as repeated fields: numbers packed (the tag,
// the length, the values), other elements one tag and value each. An
// empty or null list writes nothing.
type pbListEncoder struct {
	pbField
	spans  pbSpans
	elem   pbEncoder
	packed bool
	fixed  int // packed element width (4, 8), 0 for varints
}

func (e *pbListEncoder) bind(arr arrow.Array) {
	e.set(arr)
	e.spans.bind(arr)
	e.elem.bind(arr.(array.ListLike).ListValues())
}

func (e *pbListEncoder) appendField(dst []byte, i int) []byte {
	if e.null(i) {
		return dst
	}
	start, end := e.spans.span(i)
	if start == end {
		return dst
	}
	if !e.packed {
		for j := start; j < end; j++ {
			dst = e.elem.appendValue(pbTag(dst, e.tag), j)
		}
		return dst
	}
	dst = pbTag(dst, e.tag)
	if e.fixed > 0 {
		dst = protowire.AppendVarint(dst, uint64((end-start)*e.fixed))
		for j := start; j < end; j++ {
			dst = e.elem.appendValue(dst, j)
		}
		return dst
	}
	dst, at := pbOpen(dst)
	for j := start; j < end; j++ {
		dst = e.elem.appendValue(dst, j)
	}
	return pbClose(dst, at)
}

// appendValue is never called: a list is always a field (of a message, or
// of the wrapper message a list element or map value becomes).
func (e *pbListEncoder) appendValue(dst []byte, i int) []byte {
	panic("encode: a protobuf list has no value outside its field")
}

// pbMapEncoder encodes maps (and lists of key/value entries) as repeated
// entry messages {key = 1; value = 2}, in stored order. A null value is
// left out of its entry (the value type's zero).
type pbMapEncoder struct {
	pbField
	offs       []int32
	keys, vals pbEncoder
}

func (e *pbMapEncoder) bind(arr arrow.Array) {
	e.set(arr)
	e.offs = offsets[int32](arr)
	// Field(k) of the entries struct is sliced to the struct's offset,
	// unlike array.Map's Keys and Items.
	entries := arr.(*array.Map).ListValues().(*array.Struct)
	e.keys.bind(entries.Field(0))
	e.vals.bind(entries.Field(1))
}

func (e *pbMapEncoder) appendField(dst []byte, i int) []byte {
	if e.null(i) {
		return dst
	}
	for j := int(e.offs[i]); j < int(e.offs[i+1]); j++ {
		var at int
		dst, at = pbOpen(pbTag(dst, e.tag))
		dst = e.keys.appendField(dst, j)
		dst = e.vals.appendField(dst, j)
		dst = pbClose(dst, at)
	}
	return dst
}

// appendValue is never called (see pbListEncoder.appendValue).
func (e *pbMapEncoder) appendValue(dst []byte, i int) []byte {
	panic("encode: a protobuf map has no value outside its field")
}

func newPbDictionaryEncoder(dt *arrow.DictionaryType, vals pbEncoder, cache bool, path string) (pbEncoder, error) {
	switch dt.IndexType.ID() {
	case arrow.INT8:
		return &pbDictionaryEncoder[int8]{vals: vals, cache: cache}, nil
	case arrow.INT16:
		return &pbDictionaryEncoder[int16]{vals: vals, cache: cache}, nil
	case arrow.INT32:
		return &pbDictionaryEncoder[int32]{vals: vals, cache: cache}, nil
	case arrow.INT64:
		return &pbDictionaryEncoder[int64]{vals: vals, cache: cache}, nil
	case arrow.UINT8:
		return &pbDictionaryEncoder[uint8]{vals: vals, cache: cache}, nil
	case arrow.UINT16:
		return &pbDictionaryEncoder[uint16]{vals: vals, cache: cache}, nil
	case arrow.UINT32:
		return &pbDictionaryEncoder[uint32]{vals: vals, cache: cache}, nil
	case arrow.UINT64:
		return &pbDictionaryEncoder[uint64]{vals: vals, cache: cache}, nil
	}
	return nil, unsupported(path, dt)
}

// pbDictionaryEncoder encodes dictionary-encoded values as the values they
// stand for. When the dictionary is no longer than the batch (and its
// values are not lists or maps), each entry's value is encoded once per
// batch and rows copy the encoded bytes after the tag.
type pbDictionaryEncoder[I indexType] struct {
	pbField
	idx   []I
	vals  pbEncoder // same field: a null entry is written like a null index
	cache bool
	dictCache
	bound bool // the dictionary is bound (an empty array may have none)
}

func (e *pbDictionaryEncoder[I]) setField(tag []byte, implicit bool) {
	e.pbField.setField(tag, implicit)
	e.vals.setField(tag, implicit)
}

func (e *pbDictionaryEncoder[I]) bind(arr arrow.Array) {
	e.set(arr)
	e.idx = values[I](arr)
	e.bound = arr.Len() > 0
	if !e.cache {
		e.cached = false
		if e.bound {
			e.vals.bind(arr.(*array.Dictionary).Dictionary())
		}
		return
	}
	e.bindDictionary(arr, e.vals.bind, e.vals)
}

func (e *pbDictionaryEncoder[I]) isNull(i int) bool {
	return e.null(i) || e.vals.isNull(int(e.idx[i]))
}

func (e *pbDictionaryEncoder[I]) appendField(dst []byte, i int) []byte {
	if e.null(i) {
		return dst
	}
	k := int(e.idx[i])
	if !e.cached {
		return e.vals.appendField(dst, k)
	}
	if e.vals.isNull(k) {
		return dst
	}
	start := len(dst)
	dst = pbTag(dst, e.tag)
	v := len(dst)
	dst = e.appendEntry(dst, e.vals, k)
	if e.implicit && pbZero(dst[v:]) {
		return dst[:start]
	}
	return dst
}

func (e *pbDictionaryEncoder[I]) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return e.appendZero(dst)
	}
	return e.appendEntry(dst, e.vals, int(e.idx[i]))
}

// appendZero appends the zero value of the entries' type.
func (e *pbDictionaryEncoder[I]) appendZero(dst []byte) []byte {
	switch e.vals.(type) {
	case *pbFixed32Encoder, *pbFloat16Encoder:
		return binary.LittleEndian.AppendUint32(dst, 0)
	case *pbFixed64Encoder:
		return binary.LittleEndian.AppendUint64(dst, 0)
	}
	return append(dst, 0) // varint 0, empty string, bytes or message
}

func newPbRunEndEncoder(dt *arrow.RunEndEncodedType, vals pbEncoder, path string) (pbEncoder, error) {
	switch dt.RunEnds().ID() {
	case arrow.INT16:
		return &pbRunEndEncoder[int16]{vals: vals}, nil
	case arrow.INT32:
		return &pbRunEndEncoder[int32]{vals: vals}, nil
	case arrow.INT64:
		return &pbRunEndEncoder[int64]{vals: vals}, nil
	}
	return nil, unsupported(path, dt)
}

// pbRunEndEncoder encodes run-end-encoded values as the values they stand
// for (the values array holds the nulls).
type pbRunEndEncoder[R int16 | int32 | int64] struct {
	runCursor[R]
	vals pbEncoder
}

func (e *pbRunEndEncoder[R]) setField(tag []byte, implicit bool) { e.vals.setField(tag, implicit) }

func (e *pbRunEndEncoder[R]) bind(arr arrow.Array) {
	r := arr.(*array.RunEndEncoded)
	e.reset(r)
	e.vals.bind(r.Values())
}

func (e *pbRunEndEncoder[R]) isNull(i int) bool { return e.vals.isNull(e.physical(i)) }

func (e *pbRunEndEncoder[R]) appendField(dst []byte, i int) []byte {
	return e.vals.appendField(dst, e.physical(i))
}

func (e *pbRunEndEncoder[R]) appendValue(dst []byte, i int) []byte {
	return e.vals.appendValue(dst, e.physical(i))
}
