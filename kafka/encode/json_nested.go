package encode

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// listEncoder encodes list (O=int32) and large_list (O=int64) values as
// JSON arrays.
type listEncoder[O int32 | int64] struct {
	validity
	offs []O
	elem valueEncoder
}

func newListEncoder[O int32 | int64](elem arrow.Field, path string, o *JSONOptions) (*listEncoder[O], error) {
	enc, err := newValueEncoder(elem.Type, joinPath(path, elem.Name), o)
	if err != nil {
		return nil, err
	}
	return &listEncoder[O]{elem: enc}, nil
}

func (e *listEncoder[O]) bind(arr arrow.Array) {
	e.set(arr)
	e.offs = offsets[O](arr)
	e.elem.bind(arr.(array.ListLike).ListValues())
}

func (e *listEncoder[O]) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, "null"...)
	}
	return appendElems(dst, e.elem, int(e.offs[i]), int(e.offs[i+1]))
}

// appendElems appends elements [start, end) of enc's array as a JSON array.
func appendElems(dst []byte, enc valueEncoder, start, end int) []byte {
	dst = append(dst, '[')
	for j := start; j < end; j++ {
		if j > start {
			dst = append(dst, ',')
		}
		dst = enc.appendValue(dst, j)
	}
	return append(dst, ']')
}

// listViewEncoder encodes list_view (O=int32) and large_list_view (O=int64)
// values as JSON arrays.
type listViewEncoder[O int32 | int64] struct {
	validity
	offs, sizes []O
	elem        valueEncoder
}

func newListViewEncoder[O int32 | int64](elem arrow.Field, path string, o *JSONOptions) (*listViewEncoder[O], error) {
	enc, err := newValueEncoder(elem.Type, joinPath(path, elem.Name), o)
	if err != nil {
		return nil, err
	}
	return &listViewEncoder[O]{elem: enc}, nil
}

func (e *listViewEncoder[O]) bind(arr arrow.Array) {
	e.set(arr)
	e.offs, e.sizes = values[O](arr), valuesOf[O](arr.Data(), 2)
	e.elem.bind(arr.(array.ListLike).ListValues())
}

func (e *listViewEncoder[O]) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, "null"...)
	}
	start := int(e.offs[i])
	return appendElems(dst, e.elem, start, start+int(e.sizes[i]))
}

// fixedSizeListEncoder encodes fixed_size_list values as JSON arrays.
type fixedSizeListEncoder struct {
	validity
	n    int
	off  int
	elem valueEncoder
}

func newFixedSizeListEncoder(dt *arrow.FixedSizeListType, path string, o *JSONOptions) (*fixedSizeListEncoder, error) {
	elem := dt.ElemField()
	enc, err := newValueEncoder(elem.Type, joinPath(path, elem.Name), o)
	if err != nil {
		return nil, err
	}
	return &fixedSizeListEncoder{n: int(dt.Len()), elem: enc}, nil
}

func (e *fixedSizeListEncoder) bind(arr arrow.Array) {
	e.set(arr)
	e.off = arr.Data().Offset()
	e.elem.bind(arr.(*array.FixedSizeList).ListValues())
}

func (e *fixedSizeListEncoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, "null"...)
	}
	start := (e.off + i) * e.n
	return appendElems(dst, e.elem, start, start+e.n)
}

// structEncoder encodes struct values as JSON objects with the fields in
// type order.
type structEncoder struct {
	validity
	fields []column // prefixes are `{"a":` then `,"b":`
}

func newStructEncoder(dt *arrow.StructType, path string, o *JSONOptions) (*structEncoder, error) {
	e := &structEncoder{fields: make([]column, dt.NumFields())}
	for k, f := range dt.Fields() {
		enc, err := newValueEncoder(f.Type, joinPath(path, f.Name), o)
		if err != nil {
			return nil, err
		}
		e.fields[k] = column{prefix: newKeyBytes(keyPrefix(k == 0, f.Name)), enc: enc}
	}
	return e, nil
}

func (e *structEncoder) bind(arr arrow.Array) {
	e.set(arr)
	s := arr.(*array.Struct)
	for k := range e.fields {
		// Field(k) is already sliced to the struct's offset; a struct
		// element that is null is caught before its fields are read.
		e.fields[k].enc.bind(s.Field(k))
	}
}

func (e *structEncoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, "null"...)
	}
	if len(e.fields) == 0 {
		return append(dst, '{', '}')
	}
	for k := range e.fields {
		f := &e.fields[k]
		dst = f.prefix.appendTo(dst)
		dst = f.enc.appendValue(dst, i)
	}
	return append(dst, '}')
}

// mapEncoder encodes maps as JSON objects when the keys are strings, and
// otherwise as arrays of {"key":…,"value":…} objects, in entry order.
type mapEncoder struct {
	validity
	offs       []int32
	keys, vals valueEncoder
	object     bool     // string keys: write {"k":v,...}
	keyNulls   validity // map keys must not be null; tolerate it anyway
}

func newMapEncoder(dt *arrow.MapType, path string, o *JSONOptions) (*mapEncoder, error) {
	kf, vf := dt.KeyField(), dt.ItemField()
	keys, err := newValueEncoder(kf.Type, joinPath(path, kf.Name), o)
	if err != nil {
		return nil, err
	}
	vals, err := newValueEncoder(vf.Type, joinPath(path, vf.Name), o)
	if err != nil {
		return nil, err
	}
	var object bool
	switch kf.Type.ID() {
	case arrow.STRING, arrow.LARGE_STRING, arrow.STRING_VIEW:
		object = true
	}
	return &mapEncoder{keys: keys, vals: vals, object: object}, nil
}

func (e *mapEncoder) bind(arr arrow.Array) {
	e.set(arr)
	e.offs = offsets[int32](arr)
	// Field(k) of the entries struct is sliced to the struct's offset,
	// unlike array.Map's Keys and Items.
	entries := arr.(*array.Map).ListValues().(*array.Struct)
	e.keys.bind(entries.Field(0))
	e.vals.bind(entries.Field(1))
	e.keyNulls.set(entries.Field(0))
}

func (e *mapEncoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, "null"...)
	}
	start, end := int(e.offs[i]), int(e.offs[i+1])
	if !e.object {
		dst = append(dst, '[')
		for j := start; j < end; j++ {
			if j > start {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"key":`...)
			dst = e.keys.appendValue(dst, j)
			dst = append(dst, `,"value":`...)
			dst = e.vals.appendValue(dst, j)
			dst = append(dst, '}')
		}
		return append(dst, ']')
	}
	dst = append(dst, '{')
	for j := start; j < end; j++ {
		if j > start {
			dst = append(dst, ',')
		}
		if e.keyNulls.null(j) {
			dst = append(dst, '"', '"')
		} else {
			dst = e.keys.appendValue(dst, j)
		}
		dst = append(dst, ':')
		dst = e.vals.appendValue(dst, j)
	}
	return append(dst, '}')
}
