package put

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// csvNulls are the CSV values read as null in columns that are not text
// (text columns keep them as they are).
var csvNulls = []string{"", "NULL", "null"}

// Types a sampled value may have, from the narrowest; a column takes the
// narrowest type all its sampled values have (docs/put.md).
var (
	tsType   = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	dateType = arrow.FixedWidthTypes.Date32
)

// textType is the type a text value suggests: a date (2026-01-02), a
// timestamp with a zone (RFC 3339), else text.
func textType(v string) arrow.DataType {
	if _, err := time.Parse("2006-01-02", v); err == nil {
		return dateType
	}
	if _, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return tsType
	}
	return arrow.BinaryTypes.String
}

// csvValueType is the narrowest type of one CSV value: int64, float64,
// bool (true/false), then textType's.
func csvValueType(v string) arrow.DataType {
	if _, err := strconv.ParseInt(v, 10, 64); err == nil {
		return arrow.PrimitiveTypes.Int64
	}
	if _, err := strconv.ParseFloat(v, 64); err == nil {
		return arrow.PrimitiveTypes.Float64
	}
	if l := strings.ToLower(v); l == "true" || l == "false" {
		return arrow.FixedWidthTypes.Boolean
	}
	return textType(v)
}

// widen is the type holding values of both a and b (nil: none seen yet):
// int64 and float64 widen to float64, anything else mixed to text.
func widen(a, b arrow.DataType) arrow.DataType {
	switch {
	case a == nil:
		return b
	case b == nil || arrow.TypeEqual(a, b):
		return a
	case isNumber(a) && isNumber(b):
		return arrow.PrimitiveTypes.Float64
	}
	return arrow.BinaryTypes.String
}

func isNumber(t arrow.DataType) bool {
	return t.ID() == arrow.INT64 || t.ID() == arrow.FLOAT64
}

// sampleCSV reads the header and up to rows data rows of r and returns
// the schema (given when not nil, its names checked against the header;
// else inferred from the sample: every column nullable, a column with no
// value text) and a reader that replays everything from the start.
func sampleCSV(name string, r io.Reader, comma rune, rows int, given *arrow.Schema) (*arrow.Schema, io.Reader, error) {
	var seen bytes.Buffer
	cr := csv.NewReader(io.TeeReader(r, &seen))
	cr.Comma = comma
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, fmt.Errorf("put: %s: empty; a CSV input starts with a header line naming its columns", name)
		}
		return nil, nil, fmt.Errorf("put: %s: reading the CSV header: %w", name, err)
	}
	header = append([]string(nil), header...)
	replay := func() io.Reader { return io.MultiReader(bytes.NewReader(seen.Bytes()), r) }
	if given != nil {
		if got := strings.Join(header, ", "); got != fieldNames(given) {
			return nil, nil, fmt.Errorf("put: %s: the CSV header names the columns %s; the schema has %s", name, got, fieldNames(given))
		}
		return given, replay(), nil
	}
	types := make([]arrow.DataType, len(header))
	for line := 2; line < rows+2; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("put: %s: %w", name, err)
		}
		for i, v := range rec {
			if !isCSVNull(v) {
				types[i] = widen(types[i], csvValueType(v))
			}
		}
	}
	fields := make([]arrow.Field, len(header))
	for i, h := range header {
		if types[i] == nil {
			types[i] = arrow.BinaryTypes.String
		}
		fields[i] = arrow.Field{Name: h, Type: types[i], Nullable: true}
	}
	return arrow.NewSchema(fields, nil), replay(), nil
}

func isCSVNull(v string) bool {
	for _, n := range csvNulls {
		if v == n {
			return true
		}
	}
	return false
}

// jsonColumn is what the sampled lines say of one key.
type jsonColumn struct {
	name     string
	typ      arrow.DataType
	kind     string // "number", "string", "boolean", "object", "array": of the first value seen
	line     int    // where kind was first seen
	children *jsonColumns
	elem     *jsonColumn // an array's elements
}

// jsonColumns are the keys of an object in the order they first appear.
type jsonColumns struct {
	order []*jsonColumn
	byKey map[string]*jsonColumn
}

func (c *jsonColumns) get(name string) *jsonColumn {
	if c.byKey == nil {
		c.byKey = map[string]*jsonColumn{}
	}
	col, ok := c.byKey[name]
	if !ok {
		col = &jsonColumn{name: name}
		c.byKey[name] = col
		c.order = append(c.order, col)
	}
	return col
}

// inferJSONL samples up to rows lines of r (one JSON object each) and
// returns their schema and a reader that replays everything from the start.
func inferJSONL(name string, r io.Reader, rows int) (*arrow.Schema, io.Reader, error) {
	var seen bytes.Buffer
	dec := json.NewDecoder(io.TeeReader(r, &seen))
	dec.UseNumber()
	var cols jsonColumns
	for line := 1; line <= rows; line++ {
		v, err := decodeOrdered(dec)
		if errors.Is(err, io.EOF) {
			break
		}
		obj, ok := v.(*orderedObject)
		if err != nil || !ok {
			if err == nil {
				err = fmt.Errorf("%T", v)
			}
			return nil, nil, fmt.Errorf("put: %s: line %d: not a JSON object: %w", name, line, err)
		}
		if err := cols.add(obj, line, ""); err != nil {
			return nil, nil, fmt.Errorf("put: %s: %w; pass --schema", name, err)
		}
	}
	if len(cols.order) == 0 {
		return nil, nil, fmt.Errorf("put: %s: no JSON object to infer a schema from; pass --schema", name)
	}
	return arrow.NewSchema(cols.fields(), nil), io.MultiReader(bytes.NewReader(seen.Bytes()), r), nil
}

// orderedObject is a JSON object with its keys in the order written.
type orderedObject struct {
	keys []string
	vals []any
}

// decodeOrdered reads one JSON value: objects as *orderedObject, arrays
// as []any, numbers as json.Number.
func decodeOrdered(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return tok, nil
	}
	var obj *orderedObject
	var arr []any
	if delim == '{' {
		obj = &orderedObject{}
	} else {
		arr = []any{}
	}
	for dec.More() {
		if obj != nil {
			key, err := dec.Token()
			if err != nil {
				return nil, err
			}
			obj.keys = append(obj.keys, key.(string))
		}
		v, err := decodeOrdered(dec)
		if err != nil {
			return nil, err
		}
		if obj != nil {
			obj.vals = append(obj.vals, v)
		} else {
			arr = append(arr, v)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return nil, err
	}
	if obj != nil {
		return obj, nil
	}
	return arr, nil
}

// add merges one object's keys; columns keep the order they first appear in.
func (c *jsonColumns) add(obj *orderedObject, line int, path string) error {
	for i, k := range obj.keys {
		if err := c.get(k).add(obj.vals[i], line, path+k); err != nil {
			return err
		}
	}
	return nil
}

func (col *jsonColumn) add(v any, line int, path string) error {
	var kind string
	var typ arrow.DataType
	switch v := v.(type) {
	case nil:
		return nil
	case json.Number:
		kind, typ = "number", arrow.PrimitiveTypes.Int64
		if _, err := v.Int64(); err != nil {
			typ = arrow.PrimitiveTypes.Float64
		}
	case string:
		kind, typ = "string", textType(v)
	case bool:
		kind, typ = "boolean", arrow.FixedWidthTypes.Boolean
	case *orderedObject:
		kind = "object"
	case []any:
		kind = "array"
	}
	if col.kind != "" && col.kind != kind {
		return fmt.Errorf("field %q: line %d has %s %s, line %d %s %s", path, line, article(kind), kind, col.line, article(col.kind), col.kind)
	}
	if col.kind == "" {
		col.kind, col.line = kind, line
	}
	switch v := v.(type) {
	case *orderedObject:
		if col.children == nil {
			col.children = &jsonColumns{}
		}
		return col.children.add(v, line, path+".")
	case []any:
		if col.elem == nil {
			col.elem = &jsonColumn{name: "item"}
		}
		for _, e := range v {
			if err := col.elem.add(e, line, path+"[]"); err != nil {
				return err
			}
		}
		return nil
	}
	if kind == "string" && col.typ != nil && !arrow.TypeEqual(col.typ, typ) {
		typ = arrow.BinaryTypes.String // dates and timestamps mixed, or with other text
	}
	col.typ = widen(col.typ, typ)
	return nil
}

func article(kind string) string {
	if kind == "object" || kind == "array" {
		return "an"
	}
	return "a"
}

// dataType is the column's Arrow type; a key only ever null is text.
func (col *jsonColumn) dataType() arrow.DataType {
	switch col.kind {
	case "object":
		return arrow.StructOf(col.children.fields()...)
	case "array":
		return arrow.ListOf(col.elem.dataType())
	case "":
		return arrow.BinaryTypes.String
	}
	return col.typ
}

func (c *jsonColumns) fields() []arrow.Field {
	fields := make([]arrow.Field, len(c.order))
	for i, col := range c.order {
		fields[i] = arrow.Field{Name: col.name, Type: col.dataType(), Nullable: true}
	}
	return fields
}
