package kafka

import (
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// projection resolves value_fields / exclude_fields to the value's columns
// (ValueFields wins: the descriptor parser refuses both).
func projection(schema *arrow.Schema, d *RecordOptions) ([]int, *arrow.Schema, error) {
	var idx []int
	if len(d.ValueFields) > 0 {
		for _, name := range d.ValueFields {
			i := schema.FieldIndices(name)
			if len(i) == 0 {
				return nil, nil, optionError(fmt.Sprintf(`key "value_fields": no column %q (columns: %s)`, name, columnNames(schema)))
			}
			idx = append(idx, i[0])
		}
	} else {
		skip := map[string]bool{}
		for _, name := range d.ExcludeFields {
			if len(schema.FieldIndices(name)) == 0 {
				return nil, nil, optionError(fmt.Sprintf(`key "exclude_fields": no column %q (columns: %s)`, name, columnNames(schema)))
			}
			skip[name] = true
		}
		for i, f := range schema.Fields() {
			if !skip[f.Name] {
				idx = append(idx, i)
			}
		}
	}
	fields := make([]arrow.Field, len(idx))
	for i, c := range idx {
		fields[i] = schema.Field(c)
	}
	return idx, arrow.NewSchema(fields, nil), nil
}

func columnNames(schema *arrow.Schema) string {
	var names []string
	for _, f := range schema.Fields() {
		names = append(names, f.Name)
	}
	return strings.Join(names, ", ")
}

// column finds a named column and checks its type; -1 when name is "".
func column(schema *arrow.Schema, key, name string, ok func(arrow.DataType) bool) (int, error) {
	if name == "" {
		return -1, nil
	}
	i := schema.FieldIndices(name)
	if len(i) == 0 {
		return -1, &SchemaError{Msg: fmt.Sprintf("invalid descriptor key %q: no column %q (columns: %s)", key, name, columnNames(schema))}
	}
	if t := schema.Field(i[0]).Type; !ok(t) {
		return -1, &SchemaError{Msg: fmt.Sprintf("invalid descriptor key %q: column %q has type %v, which it cannot be (%s)", key, name, t, columnRule[key])}
	}
	return i[0], nil
}

var columnRule = map[string]string{
	"tombstone_field": "a boolean column",
	"partition_field": "an integer column",
	"topic_field":     "a utf8 column",
	"headers_field":   "map<utf8, utf8|binary> or list<struct<key: utf8, value: utf8|binary>>",
}

func isBool(t arrow.DataType) bool { return t.ID() == arrow.BOOL }

func isString(t arrow.DataType) bool { return t.ID() == arrow.STRING || t.ID() == arrow.LARGE_STRING }

func isInteger(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32:
		return true
	}
	return false
}

func isHeaderValue(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.STRING, arrow.BINARY:
		return true
	}
	return false
}

func isHeaders(t arrow.DataType) bool {
	switch t := t.(type) {
	case *arrow.MapType:
		return t.KeyType().ID() == arrow.STRING && isHeaderValue(t.ItemType())
	case *arrow.ListType:
		st, ok := t.Elem().(*arrow.StructType)
		if !ok || st.NumFields() != 2 {
			return false
		}
		k, kok := st.FieldByName("key")
		v, vok := st.FieldByName("value")
		return kok && vok && k.Type.ID() == arrow.STRING && isHeaderValue(v.Type)
	}
	return false
}

// rawColumnType checks the value column of a raw format.
func rawColumnType(schema *arrow.Schema, name string, f Format) error {
	i := schema.FieldIndices(name)
	if len(i) == 0 {
		return optionError(fmt.Sprintf(`key "value_field": no column %q (columns: %s)`, name, columnNames(schema)))
	}
	t := schema.Field(i[0]).Type
	id := t.ID()
	if d, ok := t.(*arrow.DictionaryType); ok {
		id = d.ValueType.ID()
	}
	switch {
	case f == FormatRawString && (id == arrow.STRING || id == arrow.LARGE_STRING || id == arrow.STRING_VIEW):
	case f == FormatRawBytes && (id == arrow.BINARY || id == arrow.LARGE_BINARY || id == arrow.BINARY_VIEW || id == arrow.FIXED_SIZE_BINARY):
	default:
		return &SchemaError{Msg: fmt.Sprintf(
			"format %q: value column %q has type %v; raw_string takes a utf8 column, raw_bytes a binary one", f, name, t)}
	}
	return nil
}

// integerReader reads an integer column as int64.
func integerReader(arr arrow.Array) func(i int) (int64, bool) {
	get := func(v func(int) int64) func(int) (int64, bool) {
		return func(i int) (int64, bool) {
			if arr.IsNull(i) {
				return 0, false
			}
			return v(i), true
		}
	}
	switch a := arr.(type) {
	case *array.Int8:
		return get(func(i int) int64 { return int64(a.Value(i)) })
	case *array.Int16:
		return get(func(i int) int64 { return int64(a.Value(i)) })
	case *array.Int32:
		return get(func(i int) int64 { return int64(a.Value(i)) })
	case *array.Int64:
		return get(func(i int) int64 { return a.Value(i) })
	case *array.Uint8:
		return get(func(i int) int64 { return int64(a.Value(i)) })
	case *array.Uint16:
		return get(func(i int) int64 { return int64(a.Value(i)) })
	case *array.Uint32:
		return get(func(i int) int64 { return int64(a.Value(i)) })
	}
	panic(fmt.Sprintf("integerReader: %T", arr))
}

// headerReader appends one row's headers from a headers_field column.
type headerReader interface {
	appendHeaders(buf []byte, row int, p *Plan) ([]byte, error)
}

// newHeaderReader binds a map or list-of-struct headers column.
func newHeaderReader(arr arrow.Array) headerReader {
	switch a := arr.(type) {
	case *array.Map:
		return &kvHeaders{list: a, offsets: a.Offsets(), keys: a.Keys().(*array.String), vals: a.Items()}
	case *array.List:
		st := a.ListValues().(*array.Struct)
		ki, _ := st.DataType().(*arrow.StructType).FieldIdx("key")
		vi, _ := st.DataType().(*arrow.StructType).FieldIdx("value")
		return &kvHeaders{list: a, offsets: a.Offsets(), keys: st.Field(ki).(*array.String), vals: st.Field(vi), structs: st}
	}
	panic(fmt.Sprintf("newHeaderReader: %T", arr))
}

type kvHeaders struct {
	list    arrow.Array
	offsets []int32
	keys    *array.String
	vals    arrow.Array
	structs *array.Struct // list form: a null element is skipped
}

func (h *kvHeaders) appendHeaders(buf []byte, row int, p *Plan) ([]byte, error) {
	if h.list.IsNull(row) {
		return buf, nil
	}
	for j := int(h.offsets[row]); j < int(h.offsets[row+1]); j++ {
		if h.structs != nil && h.structs.IsNull(j) {
			continue
		}
		if h.keys.IsNull(j) {
			return buf, fmt.Errorf("headers_field %q has a null header name", p.d.HeadersField)
		}
		key := p.internString(h.keys.Value(j))
		val := span{-1, -1}
		if !h.vals.IsNull(j) {
			start := len(buf)
			switch v := h.vals.(type) {
			case *array.String:
				buf = append(buf, v.Value(j)...)
			case *array.Binary:
				buf = append(buf, v.Value(j)...)
			}
			val = span{start, len(buf)}
		}
		p.hdrs = append(p.hdrs, hdrRef{key, val})
	}
	return buf, nil
}
