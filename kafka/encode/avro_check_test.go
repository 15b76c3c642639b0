package encode

import (
	"bytes"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/hamba/avro/v2"
)

// This file holds the test-side reference for the Avro encoder: the Go
// value each Arrow element must decode to (computed from the arrays through
// arrow-go's accessors, not through the encoder's code), and the plumbing to
// decode datums and to encode values with github.com/hamba/avro/v2.
//
// Values are compared in a normal form: ints as int64, floats as their bits
// (avroF32, avroF64) so that NaNs compare, decimals as big.Rat.RatString() text,
// bytes and fixed as non-nil []byte, dates and timestamps as UTC time.Time,
// times of day as time.Duration, records and maps as map[string]any, arrays
// as []any, null as nil, unions unwrapped.

type (
	avroF32 uint32
	avroF64 uint64
)

// parseAvro parses schema text with a fresh name cache, so that schemas
// that reuse names do not see each other.
func parseAvro(text string) (avro.Schema, error) {
	return avro.ParseWithCache(text, "", &avro.SchemaCache{})
}

// avroLib is the library configured to write arrays and maps as one block
// without a byte size, as the encoder does, so that bytes can be compared.
var avroLib = avro.Config{DisableBlockSizeHeader: true, BlockLength: math.MaxInt32}.Freeze()

// decodeAvro decodes one datum of schema (a record) with the library's
// generic decoding (into map[string]any) and returns it in normal form.
// All of data must be consumed.
func decodeAvro(schema avro.Schema, data []byte) (any, error) {
	r := avro.NewReader(nil, 0, avro.WithReaderConfig(avroLib)).Reset(data)
	var v map[string]any
	r.ReadVal(schema, &v)
	if r.Error != nil {
		return nil, r.Error
	}
	var b [1]byte
	if r.Read(b[:]); r.Error == nil {
		return nil, fmt.Errorf("bytes left after the datum")
	}
	if v == nil {
		v = map[string]any{}
	}
	return avroNorm(schema, v), nil
}

// avroNorm brings a value from the library's generic reader to normal form.
func avroNorm(schema avro.Schema, v any) any {
	switch s := schema.(type) {
	case *avro.RefSchema:
		return avroNorm(s.Schema(), v)
	case *avro.UnionSchema:
		if v == nil {
			return nil
		}
		// The library resolves unions of null and a primitive type to the
		// value; others come as {"full name": value}.
		branch := s.Types()[1]
		if _, ok := branch.(*avro.PrimitiveSchema); ok {
			return avroNorm(branch, v)
		}
		return avroNorm(branch, v.(map[string]any)[avroTypeName(branch)])
	case *avro.RecordSchema:
		m := v.(map[string]any)
		out := make(map[string]any, len(m))
		for _, f := range s.Fields() {
			out[f.Name()] = avroNorm(f.Type(), m[f.Name()])
		}
		return out
	case *avro.ArraySchema:
		out := []any{}
		for _, e := range v.([]any) {
			out = append(out, avroNorm(s.Items(), e))
		}
		return out
	case *avro.MapSchema:
		out := map[string]any{}
		for k, e := range v.(map[string]any) {
			out[k] = avroNorm(s.Values(), e)
		}
		return out
	}
	switch v := v.(type) {
	case int:
		return int64(v)
	case float32:
		return avroF32(math.Float32bits(v))
	case float64:
		return avroF64(math.Float64bits(v))
	case *big.Rat:
		return v.RatString()
	case []byte:
		return append([]byte{}, v...)
	case nil, bool, int64, string, time.Time, time.Duration:
		return v
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Array { // fixed
		out := make([]byte, rv.Len())
		reflect.Copy(reflect.ValueOf(out), rv)
		return out
	}
	panic(fmt.Sprintf("avroNorm: unexpected %T", v))
}

// avroLibValue turns a normal-form value into one the library encodes with
// schema: unions as {"branch name": value}, native types per logical type.
func avroLibValue(schema avro.Schema, v any) any {
	switch s := schema.(type) {
	case *avro.RefSchema:
		return avroLibValue(s.Schema(), v)
	case *avro.UnionSchema:
		if v == nil {
			return map[string]any{"null": nil}
		}
		branch := s.Types()[1]
		return map[string]any{avroTypeName(branch): avroLibValue(branch, v)}
	case *avro.RecordSchema:
		m := v.(map[string]any)
		out := make(map[string]any, len(m))
		for _, f := range s.Fields() {
			out[f.Name()] = avroLibValue(f.Type(), m[f.Name()])
		}
		return out
	case *avro.ArraySchema:
		out := []any{}
		for _, e := range v.([]any) {
			out = append(out, avroLibValue(s.Items(), e))
		}
		return out
	case *avro.MapSchema:
		out := map[string]any{}
		for k, e := range v.(map[string]any) {
			out[k] = avroLibValue(s.Values(), e)
		}
		return out
	case *avro.FixedSchema:
		b := v.([]byte)
		arr := reflect.New(reflect.ArrayOf(len(b), reflect.TypeFor[byte]())).Elem()
		reflect.Copy(arr, reflect.ValueOf(b))
		return arr.Interface()
	}
	switch v := v.(type) {
	case int64:
		if schema.Type() == avro.Int {
			return int32(v)
		}
		return v
	case avroF32:
		return math.Float32frombits(uint32(v))
	case avroF64:
		return math.Float64frombits(uint64(v))
	case string:
		if schema.Type() == avro.Bytes { // decimal
			r, ok := new(big.Rat).SetString(v)
			if !ok {
				panic("bad decimal " + v)
			}
			return r
		}
	}
	return v
}

// avroTypeName is the name the library gives a union branch.
func avroTypeName(s avro.Schema) string {
	if n, ok := s.(avro.NamedSchema); ok {
		return n.FullName()
	}
	name := string(s.Type())
	if l, ok := s.(avro.LogicalTypeSchema); ok && l.Logical() != nil {
		name += "." + string(l.Logical().Type())
	}
	return name
}

// avroWant is the normal-form value element i of arr must decode to, at a
// position that is nullable or not.
func avroWant(arr arrow.Array, i int, nullable bool) any {
	switch a := arr.(type) {
	case *array.Dictionary:
		if a.IsNull(i) {
			return avroNullWant(a.DataType().(*arrow.DictionaryType).ValueType, nullable)
		}
		return avroWant(a.Dictionary(), a.GetValueIndex(i), nullable)
	case *array.RunEndEncoded:
		return avroWant(a.Values(), a.GetPhysicalIndex(i), nullable)
	}
	if arr.IsNull(i) {
		return avroNullWant(arr.DataType(), nullable)
	}
	switch a := arr.(type) {
	case *array.Null:
		return nil
	case *array.Boolean:
		return a.Value(i)
	case *array.Int8:
		return int64(a.Value(i))
	case *array.Int16:
		return int64(a.Value(i))
	case *array.Int32:
		return int64(a.Value(i))
	case *array.Int64:
		return a.Value(i)
	case *array.Uint8:
		return int64(a.Value(i))
	case *array.Uint16:
		return int64(a.Value(i))
	case *array.Uint32:
		return int64(a.Value(i))
	case *array.Uint64:
		return new(big.Rat).SetInt(new(big.Int).SetUint64(a.Value(i))).RatString()
	case *array.Float16:
		return avroF32(math.Float32bits(a.Value(i).Float32()))
	case *array.Float32:
		return avroF32(math.Float32bits(a.Value(i)))
	case *array.Float64:
		return avroF64(math.Float64bits(a.Value(i)))
	case *array.Decimal32:
		return avroDecimalWant(big.NewInt(int64(a.Value(i))), a.DataType().(*arrow.Decimal32Type).Scale)
	case *array.Decimal64:
		return avroDecimalWant(big.NewInt(int64(a.Value(i))), a.DataType().(*arrow.Decimal64Type).Scale)
	case *array.Decimal128:
		return avroDecimalWant(a.Value(i).BigInt(), a.DataType().(*arrow.Decimal128Type).Scale)
	case *array.Decimal256:
		return avroDecimalWant(a.Value(i).BigInt(), a.DataType().(*arrow.Decimal256Type).Scale)
	case *array.String:
		return avroSanitize(a.Value(i))
	case *array.LargeString:
		return avroSanitize(a.Value(i))
	case *array.StringView:
		return avroSanitize(a.Value(i))
	case *array.Binary:
		return append([]byte{}, a.Value(i)...)
	case *array.LargeBinary:
		return append([]byte{}, a.Value(i)...)
	case *array.BinaryView:
		return append([]byte{}, a.Value(i)...)
	case *array.FixedSizeBinary:
		return append([]byte{}, a.Value(i)...)
	case *array.Date32:
		return time.Unix(int64(a.Value(i))*86_400, 0).UTC()
	case *array.Date64:
		ms := int64(a.Value(i))
		days := ms / 86_400_000
		if ms%86_400_000 < 0 {
			days--
		}
		days = min(max(days, math.MinInt32), math.MaxInt32)
		return time.Unix(days*86_400, 0).UTC()
	case *array.Time32:
		v := int64(a.Value(i))
		if a.DataType().(*arrow.Time32Type).Unit == arrow.Second {
			v = min(max(v*1000, math.MinInt32), math.MaxInt32)
		}
		return time.Duration(v) * time.Millisecond
	case *array.Time64:
		v := int64(a.Value(i))
		if a.DataType().(*arrow.Time64Type).Unit == arrow.Nanosecond {
			v = new(big.Int).Div(big.NewInt(v), big.NewInt(1000)).Int64() // Euclidean = floor for a positive divisor
		}
		return time.Duration(v) * time.Microsecond
	case *array.Timestamp:
		v := int64(a.Value(i))
		switch a.DataType().(*arrow.TimestampType).Unit {
		case arrow.Second:
			ms := new(big.Int).Mul(big.NewInt(v), big.NewInt(1000))
			if !ms.IsInt64() {
				if v > 0 {
					return time.UnixMilli(math.MaxInt64).UTC()
				}
				return time.UnixMilli(math.MinInt64).UTC()
			}
			return time.UnixMilli(ms.Int64()).UTC()
		case arrow.Millisecond:
			return time.UnixMilli(v).UTC()
		case arrow.Microsecond:
			return time.UnixMicro(v).UTC()
		}
		return v // timestamp-nanos: a long for the library
	case *array.Duration:
		return int64(a.Value(i))
	case *array.Struct:
		st := a.DataType().(*arrow.StructType)
		out := make(map[string]any, st.NumFields())
		for k, f := range st.Fields() {
			out[f.Name] = avroWant(a.Field(k), i, f.Nullable)
		}
		return out
	case *array.Map:
		mt := a.DataType().(*arrow.MapType)
		start, end := a.ValueOffsets(i)
		entries := a.ListValues().(*array.Struct)
		keys, items := entries.Field(0), entries.Field(1)
		if avroStringKey(mt.KeyType()) {
			out := map[string]any{}
			for j := int(start); j < int(end); j++ {
				k := ""
				if !keys.IsNull(j) {
					k = avroWant(keys, j, false).(string)
				}
				out[k] = avroWant(items, j, mt.ItemField().Nullable)
			}
			return out
		}
		out := []any{}
		for j := int(start); j < int(end); j++ {
			out = append(out, map[string]any{
				"key":   avroWant(keys, j, false),
				"value": avroWant(items, j, mt.ItemField().Nullable),
			})
		}
		return out
	case array.ListLike:
		elem := a.DataType().(arrow.ListLikeType).ElemField()
		start, end := a.ValueOffsets(i)
		out := []any{}
		for j := int(start); j < int(end); j++ {
			out = append(out, avroWant(a.ListValues(), j, elem.Nullable))
		}
		return out
	}
	panic("avroWant: no reference for " + arr.DataType().String())
}

func avroStringKey(dt arrow.DataType) bool {
	switch dt.ID() {
	case arrow.STRING, arrow.LARGE_STRING, arrow.STRING_VIEW:
		return true
	}
	return false
}

// avroNullWant is what a null decodes to: nil where nullable, else the
// zero value of the type.
func avroNullWant(dt arrow.DataType, nullable bool) any {
	if nullable {
		return nil
	}
	epoch := time.Unix(0, 0).UTC()
	switch dt := dt.(type) {
	case *arrow.NullType:
		return nil
	case *arrow.BooleanType:
		return false
	case *arrow.Int8Type, *arrow.Int16Type, *arrow.Int32Type, *arrow.Int64Type,
		*arrow.Uint8Type, *arrow.Uint16Type, *arrow.Uint32Type, *arrow.DurationType:
		return int64(0)
	case *arrow.Uint64Type, *arrow.Decimal32Type, *arrow.Decimal64Type, *arrow.Decimal128Type, *arrow.Decimal256Type:
		return "0"
	case *arrow.Float16Type, *arrow.Float32Type:
		return avroF32(0)
	case *arrow.Float64Type:
		return avroF64(0)
	case *arrow.StringType, *arrow.LargeStringType, *arrow.StringViewType:
		return ""
	case *arrow.BinaryType, *arrow.LargeBinaryType, *arrow.BinaryViewType:
		return []byte{}
	case *arrow.FixedSizeBinaryType:
		return make([]byte, dt.ByteWidth)
	case *arrow.Date32Type, *arrow.Date64Type:
		return epoch
	case *arrow.Time32Type, *arrow.Time64Type:
		return time.Duration(0)
	case *arrow.TimestampType:
		if dt.Unit == arrow.Nanosecond {
			return int64(0)
		}
		return epoch
	case *arrow.StructType:
		out := make(map[string]any, dt.NumFields())
		for _, f := range dt.Fields() {
			out[f.Name] = avroNullWant(f.Type, f.Nullable)
		}
		return out
	case *arrow.MapType:
		if avroStringKey(dt.KeyType()) {
			return map[string]any{}
		}
		return []any{}
	case arrow.ListLikeType:
		return []any{}
	case *arrow.DictionaryType:
		return avroNullWant(dt.ValueType, false)
	case *arrow.RunEndEncodedType:
		return avroNullWant(dt.Encoded(), false)
	}
	panic("avroNullWant: no zero for " + dt.String())
}

// avroDecimalWant is unscaled / 10^scale as RatString text.
func avroDecimalWant(unscaled *big.Int, scale int32) string {
	p := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(max(scale, -scale))), nil)
	r := new(big.Rat).SetInt(unscaled)
	if scale >= 0 {
		r.Quo(r, new(big.Rat).SetInt(p))
	} else {
		r.Mul(r, new(big.Rat).SetInt(p))
	}
	return r.RatString()
}

// avroSanitize replaces each byte that is not part of valid UTF-8 with
// U+FFFD.
func avroSanitize(s string) string {
	var out []byte
	for k := 0; k < len(s); {
		r, size := utf8.DecodeRuneInString(s[k:])
		if r == utf8.RuneError && size == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, s[k:k+size]...)
		}
		k += size
	}
	return string(out)
}

// avroRecordWant is the normal-form record of row i of rec.
func avroRecordWant(rec arrow.RecordBatch, i int) map[string]any {
	out := make(map[string]any, rec.NumCols())
	for k, f := range rec.Schema().Fields() {
		out[f.Name] = avroWant(rec.Column(k), i, f.Nullable)
	}
	return out
}

// avroRows encodes every row of rec with a fresh encoder.
func avroRows(rec arrow.RecordBatch) ([][]byte, error) {
	enc, err := NewAvro(rec.Schema())
	if err != nil {
		return nil, err
	}
	if err := enc.Bind(rec); err != nil {
		return nil, err
	}
	rows := make([][]byte, rec.NumRows())
	var buf []byte
	for i := range rows {
		buf = enc.AppendRow(buf[:0], i)
		rows[i] = bytes.Clone(buf)
	}
	return rows, nil
}
