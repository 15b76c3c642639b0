package encode

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
)

// Avro mapping
//
// AvroSchema derives one Avro record schema from an Arrow schema and Avro
// encodes each row as a bare Avro binary datum of that schema (no framing,
// no schema id: the caller adds the Confluent wire format header or ships
// the schema some other way). The record's fields are the columns, in
// schema order, with the columns' names.
//
// Nullability. A nullable field, list element or map value of type T is
// the union ["null", T] with the null branch first (field default null),
// so that adding a nullable column is a backward-compatible change. A
// non-nullable one is plain T. A null found where the Arrow field says
// non-nullable (Arrow does not enforce the flag) is written as T's zero
// value: false, 0, 0.0, "", empty bytes, zeros for fixed, 0 for decimals,
// 1970-01-01 / midnight / the epoch for dates, times and timestamps, an
// empty array or map, a record of such zeros (nullable fields null).
// The null type is always "null" (never a union).
//
//	Arrow type                          Avro type
//	null                                "null"
//	bool                                "boolean"
//	int8, int16, int32, uint8, uint16   "int"
//	int64, uint32                       "long"
//	uint64                              {"type":"bytes","logicalType":"decimal","precision":20,"scale":0}
//	halffloat, float                    "float" (halffloat widened exactly)
//	double                              "double"
//	decimal32/64/128/256(p, s), s >= 0  {"type":"bytes","logicalType":"decimal","precision":max(p,s),"scale":s}
//	decimal…(p, s), s < 0               same with precision p-s, scale 0 (the value times 10^-s)
//	string, large_string, string_view   "string" (invalid UTF-8 bytes become U+FFFD, as in JSON)
//	binary, large_binary, binary_view   "bytes"
//	fixed_size_binary[n]                {"type":"fixed","size":n} named after the column path
//	date32                              {"type":"int","logicalType":"date"}
//	date64                              same, the day floored (a date64 that is not a whole day loses its time)
//	time32[s], time32[ms]               {"type":"int","logicalType":"time-millis"} (seconds times 1000)
//	time64[us]                          {"type":"long","logicalType":"time-micros"}
//	time64[ns]                          {"type":"long","logicalType":"time-micros"}, floored to the microsecond
//	                                    (Avro has no time-nanos)
//	timestamp[s], timestamp[ms]         {"type":"long","logicalType":"timestamp-millis"} (seconds times 1000)
//	timestamp[us]                       {"type":"long","logicalType":"timestamp-micros"}
//	timestamp[ns]                       {"type":"long","logicalType":"timestamp-nanos"} (Avro 1.12; older
//	                                    readers ignore the logical type and see the long of nanoseconds)
//	                                    Any time zone or none: the instant is UTC, as in JSON; the zone is
//	                                    not written (zone-less is not local-timestamp-*).
//	duration[unit]                      "long", the count of the unit; the field's doc says the unit
//	list, large_list, list_view,        {"type":"array","items":T}
//	large_list_view, fixed_size_list
//	struct                              a record named after the column path, fields in type order
//	map<string|large_string|string_view, V>  {"type":"map","values":V}; a null key is ""
//	map<other K, V>                     {"type":"array","items":{record "entries" {key: K, value: V}}},
//	                                    entries in stored order (dictionary keys included, as in JSON)
//	dictionary<values=T>                T: the value each index stands for
//	run_end_encoded<values=T>           T: the value each row stands for
//	union, interval, extension          *FieldError (unsupported)
//
// Names. Avro names must match [A-Za-z_][A-Za-z0-9_]*: a column or struct
// field whose name does not, or that repeats a name within its record, is
// refused with a *FieldError naming it (nothing is renamed). Named types
// (struct records, fixed, map entry records) get the full name
// <namespace>.<name>.<path>, where path is the dotted Avro path of the
// position: struct fields by name, list elements "item", map keys "key",
// values "value" and entry records "entries" (so column s, a struct,
// is record "s" in namespace "<namespace>.<name>", and its field t, a
// fixed_size_binary, is fixed "t" in namespace "<namespace>.<name>.s").
// A duration field's doc is "duration in <unit>" (nested: "items: …",
// "values: …").
//
// Saturation. AppendRow cannot fail, so the few Arrow values outside their
// Avro type's range are clamped to the nearest representable value instead:
// timestamp[s] beyond ±2^63 ms, time32[s] beyond ±2^31 ms and date64 beyond
// ±2^31 days (none of them valid dates or times of day).
//
// Encoding (Avro 1.12 binary): int and long as zigzag varints, float and
// double as 4 and 8 little-endian IEEE bytes, string and bytes as a length
// then the bytes, fixed as its bytes, decimals as the minimal big-endian
// two's-complement bytes of the unscaled value (as Java's
// BigInteger.toByteArray), a union as the branch index (0 null, 1 value)
// then the value, arrays and maps as one block (count, items, then 0), or
// just 0 when empty, records as their fields in order.

// Avro encodes rows of record batches that share one schema as Avro binary
// datums of the record schema AvroSchema derives from that Arrow schema.
//
// Build it once per stream with NewAvro, call Bind for every batch and then
// AppendRow for each of the batch's rows.
type Avro struct {
	schema *arrow.Schema
	cols   []avroEncoder
}

// avroEncoder appends the Avro binary encoding of one element of the array
// it was last bound to. Implementations are built for one Arrow type.
type avroEncoder interface {
	// bind points the encoder at arr's buffers, once per batch.
	bind(arr arrow.Array)
	// appendValue appends element i of the bound array: the union branch
	// and the value, or what the position's null mode says for a null.
	appendValue(dst []byte, i int) []byte
	// setNulls sets the null mode, at build time: union true writes the
	// branch of ["null", T]; otherwise a null is written as zero.
	setNulls(union bool, zero []byte)
}

// AvroSchema derives the Avro record schema (compact JSON text) of rows of
// schema: a record called name in namespace (empty for none), one field per
// column in schema order. See the mapping above. It returns a *FieldError
// naming the first column (dotted path for nested fields) that cannot be
// represented, and a plain error when name or namespace is not a valid
// Avro name.
func AvroSchema(schema *arrow.Schema, name, namespace string) (string, error) {
	if !avroNameOK(name) {
		return "", fmt.Errorf("encode: invalid Avro record name %q (want [A-Za-z_][A-Za-z0-9_]*)", name)
	}
	if namespace != "" {
		for seg := range strings.SplitSeq(namespace, ".") {
			if !avroNameOK(seg) {
				return "", fmt.Errorf("encode: invalid Avro namespace %q (want dot-separated [A-Za-z_][A-Za-z0-9_]* names)", namespace)
			}
		}
	}
	typ, _, err := buildAvro(schema, name, namespace)
	if err != nil {
		return "", err
	}
	text, err := json.Marshal(typ)
	if err != nil {
		return "", fmt.Errorf("encode: Avro schema: %w", err)
	}
	return string(text), nil
}

// NewAvro builds a row encoder for schema. It returns the same *FieldError
// as AvroSchema for a schema that cannot be represented, so that a stream
// can be rejected before any row is written.
func NewAvro(schema *arrow.Schema) (*Avro, error) {
	_, cols, err := buildAvro(schema, "Row", "")
	if err != nil {
		return nil, err
	}
	return &Avro{schema: schema, cols: cols}, nil
}

// Bind points the encoder at the columns of rec, whose schema must equal
// the one given to NewAvro. It does not retain rec: the caller keeps rec
// alive (and unreleased) while calling AppendRow for its rows.
func (e *Avro) Bind(rec arrow.RecordBatch) error {
	if err := checkSchema(e.schema, rec.Schema()); err != nil {
		return err
	}
	for i, c := range e.cols {
		c.bind(rec.Column(i))
	}
	return nil
}

// AppendRow appends row (0 <= row < NumRows) of the bound batch to dst as
// one Avro binary datum and returns the extended slice. Only the appended
// bytes are written, and nothing is allocated when dst has room for them.
// A schema without columns gives an empty datum.
func (e *Avro) AppendRow(dst []byte, row int) []byte {
	for _, c := range e.cols {
		dst = c.appendValue(dst, row)
	}
	return dst
}

// buildAvro builds the record type and the column encoders of schema.
func buildAvro(schema *arrow.Schema, name, namespace string) (avroObject, []avroEncoder, error) {
	b := avroBuilder{base: name}
	if namespace != "" {
		b.base = namespace + "." + name
	}
	fields, encs, err := b.fields(schema.Fields(), "", "")
	if err != nil {
		return nil, nil, err
	}
	rec := avroObject{{"type", "record"}, {"name", name}}
	if namespace != "" {
		rec = append(rec, avroMember{"namespace", namespace})
	}
	return append(rec, avroMember{"fields", fields}), encs, nil
}

// avroBuilder builds Avro types and their encoders together.
type avroBuilder struct {
	base string // namespace of the columns' named types: "<namespace>.<name>"
}

// fields builds the fields of a record at error path path and Avro name
// path name (both empty for the top-level record).
func (b *avroBuilder) fields(fs []arrow.Field, path, name string) ([]any, []avroEncoder, error) {
	out := make([]any, len(fs))
	encs := make([]avroEncoder, len(fs))
	seen := make(map[string]bool, len(fs))
	for k, f := range fs {
		fpath := joinPath(path, f.Name)
		if !avroNameOK(f.Name) {
			return nil, nil, &FieldError{Field: fpath, Reason: fmt.Sprintf(
				"invalid Avro field name %q (Avro names must match [A-Za-z_][A-Za-z0-9_]*)", f.Name)}
		}
		if seen[f.Name] {
			return nil, nil, &FieldError{Field: fpath, Reason: fmt.Sprintf(
				"duplicate field name %q (Avro record fields must be unique)", f.Name)}
		}
		seen[f.Name] = true
		typ, note, enc, err := b.value(f.Type, f.Nullable, fpath, joinPath(name, f.Name))
		if err != nil {
			return nil, nil, err
		}
		out[k], encs[k] = avroField(f.Name, typ, note), enc
	}
	return out, encs, nil
}

// avroField is the JSON of one record field.
func avroField(name string, typ any, doc string) avroObject {
	f := avroObject{{"name", name}, {"type", typ}}
	if doc != "" {
		f = append(f, avroMember{"doc", doc})
	}
	if isAvroNullable(typ) {
		f = append(f, avroMember{"default", nil})
	}
	return f
}

// isAvroNullable reports whether typ is "null" or a union whose first
// branch is "null", the types whose default can be null.
func isAvroNullable(typ any) bool {
	switch t := typ.(type) {
	case string:
		return t == "null"
	case []any:
		return len(t) > 0 && t[0] == "null"
	}
	return false
}

// value builds the type, doc note and encoder of a position holding values
// of dt: ["null", T] when nullable, T otherwise.
func (b *avroBuilder) value(dt arrow.DataType, nullable bool, path, name string) (any, string, avroEncoder, error) {
	typ, note, enc, err := b.build(dt, path, name)
	if err != nil {
		return nil, "", nil, err
	}
	if nullable && typ != "null" {
		enc.setNulls(true, nil)
		return []any{"null", typ}, note, enc, nil
	}
	enc.setNulls(false, avroZero(typ))
	return typ, note, enc, nil
}

// named returns the name and namespace members of the named type at Avro
// name path name.
func (b *avroBuilder) named(kind, name string) avroObject {
	ns, local := b.base, name
	if k := strings.LastIndexByte(name, '.'); k >= 0 {
		ns, local = b.base+"."+name[:k], name[k+1:]
	}
	return avroObject{{"type", kind}, {"name", local}, {"namespace", ns}}
}

// logical is a primitive type with a logical type.
func avroLogical(typ, lt string) avroObject {
	return avroObject{{"type", typ}, {"logicalType", lt}}
}

// avroDecimal is the bytes decimal type.
func avroDecimal(precision, scale int32) avroObject {
	return avroObject{{"type", "bytes"}, {"logicalType", "decimal"}, {"precision", precision}, {"scale", scale}}
}

// avroMaxNegativeScale bounds how far a negative decimal scale is
// expanded into an Avro scale-0 decimal (10^1000 has 3322 bits).
const avroMaxNegativeScale = 1000

// build builds the type T (without null union), the doc note and the
// encoder of values of dt, at error path path and Avro name path name.
func (b *avroBuilder) build(dt arrow.DataType, path, name string) (any, string, avroEncoder, error) {
	switch dt := dt.(type) {
	case *arrow.NullType:
		return "null", "", avroNullEncoder{}, nil
	case *arrow.BooleanType:
		return "boolean", "", &avroBoolEncoder{}, nil
	case *arrow.Int8Type:
		return "int", "", &avroIntEncoder[int8]{}, nil
	case *arrow.Int16Type:
		return "int", "", &avroIntEncoder[int16]{}, nil
	case *arrow.Int32Type:
		return "int", "", &avroIntEncoder[int32]{}, nil
	case *arrow.Int64Type:
		return "long", "", &avroIntEncoder[int64]{}, nil
	case *arrow.Uint8Type:
		return "int", "", &avroIntEncoder[uint8]{}, nil
	case *arrow.Uint16Type:
		return "int", "", &avroIntEncoder[uint16]{}, nil
	case *arrow.Uint32Type:
		return "long", "", &avroIntEncoder[uint32]{}, nil
	case *arrow.Uint64Type:
		return avroDecimal(20, 0), "", &avroUint64Encoder{}, nil
	case *arrow.Float16Type:
		return "float", "", &avroFloat16Encoder{}, nil
	case *arrow.Float32Type:
		return "float", "", &avroFloat32Encoder{}, nil
	case *arrow.Float64Type:
		return "double", "", &avroFloat64Encoder{}, nil
	case *arrow.Decimal32Type:
		return b.decimal(dt.Precision, dt.Scale, path, &avroSmallDecimalEncoder[int32]{})
	case *arrow.Decimal64Type:
		return b.decimal(dt.Precision, dt.Scale, path, &avroSmallDecimalEncoder[int64]{})
	case *arrow.Decimal128Type:
		return b.decimal(dt.Precision, dt.Scale, path, &avroDecimal128Encoder{})
	case *arrow.Decimal256Type:
		return b.decimal(dt.Precision, dt.Scale, path, &avroDecimal256Encoder{})
	case *arrow.StringType:
		return "string", "", &avroStringEncoder[int32]{}, nil
	case *arrow.LargeStringType:
		return "string", "", &avroStringEncoder[int64]{}, nil
	case *arrow.StringViewType:
		return "string", "", &avroStringViewEncoder{}, nil
	case *arrow.BinaryType:
		return "bytes", "", &avroBinaryEncoder[int32]{}, nil
	case *arrow.LargeBinaryType:
		return "bytes", "", &avroBinaryEncoder[int64]{}, nil
	case *arrow.BinaryViewType:
		return "bytes", "", &avroBinaryViewEncoder{}, nil
	case *arrow.FixedSizeBinaryType:
		return append(b.named("fixed", name), avroMember{"size", dt.ByteWidth}), "",
			&avroFixedEncoder{width: dt.ByteWidth}, nil
	case *arrow.Date32Type:
		return avroLogical("int", "date"), "", &avroIntEncoder[int32]{}, nil
	case *arrow.Date64Type:
		return avroLogical("int", "date"), "", newAvroScaled[int64](1, 86_400_000, true), nil
	case *arrow.Time32Type:
		if dt.Unit == arrow.Second {
			return avroLogical("int", "time-millis"), "", newAvroScaled[int32](1000, 1, true), nil
		}
		return avroLogical("int", "time-millis"), "", &avroIntEncoder[int32]{}, nil
	case *arrow.Time64Type:
		if dt.Unit == arrow.Nanosecond {
			return avroLogical("long", "time-micros"), "", newAvroScaled[int64](1, 1000, false), nil
		}
		return avroLogical("long", "time-micros"), "", &avroIntEncoder[int64]{}, nil
	case *arrow.TimestampType:
		switch dt.Unit {
		case arrow.Second:
			return avroLogical("long", "timestamp-millis"), "", newAvroScaled[int64](1000, 1, false), nil
		case arrow.Millisecond:
			return avroLogical("long", "timestamp-millis"), "", &avroIntEncoder[int64]{}, nil
		case arrow.Microsecond:
			return avroLogical("long", "timestamp-micros"), "", &avroIntEncoder[int64]{}, nil
		}
		return avroLogical("long", "timestamp-nanos"), "", &avroIntEncoder[int64]{}, nil
	case *arrow.DurationType:
		return "long", "duration in " + avroUnitName(dt.Unit), &avroIntEncoder[int64]{}, nil
	case *arrow.ListType:
		return b.list(dt.ElemField(), path, name, func(elem avroEncoder) avroEncoder { return &avroListEncoder[int32]{elem: elem} })
	case *arrow.LargeListType:
		return b.list(dt.ElemField(), path, name, func(elem avroEncoder) avroEncoder { return &avroListEncoder[int64]{elem: elem} })
	case *arrow.ListViewType:
		return b.list(dt.ElemField(), path, name, func(elem avroEncoder) avroEncoder { return &avroListViewEncoder[int32]{elem: elem} })
	case *arrow.LargeListViewType:
		return b.list(dt.ElemField(), path, name, func(elem avroEncoder) avroEncoder { return &avroListViewEncoder[int64]{elem: elem} })
	case *arrow.FixedSizeListType:
		n := int(dt.Len())
		return b.list(dt.ElemField(), path, name, func(elem avroEncoder) avroEncoder { return &avroFixedSizeListEncoder{n: n, elem: elem} })
	case *arrow.StructType:
		fields, encs, err := b.fields(dt.Fields(), path, name)
		if err != nil {
			return nil, "", nil, err
		}
		return append(b.named("record", name), avroMember{"fields", fields}), "", &avroStructEncoder{fields: encs}, nil
	case *arrow.MapType:
		return b.mapType(dt, path, name)
	case *arrow.DictionaryType:
		typ, note, vals, err := b.build(dt.ValueType, path, name)
		if err != nil {
			return nil, "", nil, err
		}
		enc, err := newAvroDictionaryEncoder(dt, vals, path)
		return typ, note, enc, err
	case *arrow.RunEndEncodedType:
		typ, note, vals, err := b.build(dt.Encoded(), path, name)
		if err != nil {
			return nil, "", nil, err
		}
		enc, err := newAvroRunEndEncoder(dt, vals, path)
		return typ, note, enc, err
	}
	return nil, "", nil, unsupported(path, dt)
}

// decimal builds a bytes decimal of an Arrow decimal(precision, scale).
// Avro scales cannot be negative: such values are multiplied out into a
// scale-0 decimal with more digits.
func (b *avroBuilder) decimal(precision, scale int32, path string, enc avroDecimalEncoder) (any, string, avroEncoder, error) {
	if scale < 0 {
		if -scale > avroMaxNegativeScale {
			return nil, "", nil, &FieldError{Field: path, Reason: fmt.Sprintf(
				"decimal scale %d is below -%d, too far to expand for Avro (whose scales cannot be negative)", scale, avroMaxNegativeScale)}
		}
		enc.setScaler(newAvroDecimalScaler(-scale))
		precision, scale = precision-scale, 0
	}
	return avroDecimal(max(precision, scale, 1), scale), "", enc, nil
}

// list builds an array type of elem's values with the encoder newEnc
// wraps around the element encoder.
func (b *avroBuilder) list(elem arrow.Field, path, name string, newEnc func(avroEncoder) avroEncoder) (any, string, avroEncoder, error) {
	typ, note, enc, err := b.value(elem.Type, elem.Nullable, joinPath(path, elem.Name), joinPath(name, "item"))
	if err != nil {
		return nil, "", nil, err
	}
	if note != "" {
		note = "items: " + note
	}
	return avroObject{{"type", "array"}, {"items", typ}}, note, newEnc(enc), nil
}

// mapType builds a map (string keys) or an array of key/value records
// (other keys). Both are written the same way: blocks of key, value.
func (b *avroBuilder) mapType(dt *arrow.MapType, path, name string) (any, string, avroEncoder, error) {
	kf, vf := dt.KeyField(), dt.ItemField()
	keyTyp, keyNote, keys, err := b.value(kf.Type, false, joinPath(path, kf.Name), joinPath(name, "key"))
	if err != nil {
		return nil, "", nil, err
	}
	valTyp, valNote, vals, err := b.value(vf.Type, vf.Nullable, joinPath(path, vf.Name), joinPath(name, "value"))
	if err != nil {
		return nil, "", nil, err
	}
	enc := &avroMapEncoder{keys: keys, vals: vals}
	switch kf.Type.ID() {
	case arrow.STRING, arrow.LARGE_STRING, arrow.STRING_VIEW:
		if valNote != "" {
			valNote = "values: " + valNote
		}
		return avroObject{{"type", "map"}, {"values", valTyp}}, valNote, enc, nil
	}
	entry := append(b.named("record", joinPath(name, "entries")), avroMember{"fields", []any{
		avroField("key", keyTyp, keyNote),
		avroField("value", valTyp, valNote),
	}})
	return avroObject{{"type", "array"}, {"items", entry}}, "", enc, nil
}

// avroUnitName spells out a time unit for docs.
func avroUnitName(u arrow.TimeUnit) string {
	switch u {
	case arrow.Second:
		return "seconds"
	case arrow.Millisecond:
		return "milliseconds"
	case arrow.Microsecond:
		return "microseconds"
	}
	return "nanoseconds"
}

// avroNameOK reports whether s is a valid Avro name: [A-Za-z_][A-Za-z0-9_]*.
func avroNameOK(s string) bool {
	if s == "" {
		return false
	}
	for k := 0; k < len(s); k++ {
		c := s[k]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && k > 0:
		default:
			return false
		}
	}
	return true
}

// avroZero returns the encoding of the zero value of typ: what a null is
// written as where typ is not nullable.
func avroZero(typ any) []byte {
	switch t := typ.(type) {
	case string:
		switch t {
		case "null":
			return nil
		case "float":
			return make([]byte, 4)
		case "double":
			return make([]byte, 8)
		}
		return []byte{0} // boolean false, int/long 0, empty string/bytes
	case []any:
		return []byte{0} // the null branch
	case avroObject:
		switch t.get("type") {
		case "record":
			var zero []byte
			for _, f := range t.get("fields").([]any) {
				zero = append(zero, avroZero(f.(avroObject).get("type"))...)
			}
			return zero
		case "fixed":
			return make([]byte, t.get("size").(int))
		case "bytes": // decimal: one zero byte (empty bytes are no number)
			return []byte{2, 0}
		}
		return []byte{0} // int/long logical types, empty array or map
	}
	panic(fmt.Sprintf("avroZero: unexpected type %#v", typ))
}

// avroObject is a JSON object whose members keep their order.
type avroObject []avroMember

type avroMember struct {
	key string
	val any
}

func (o avroObject) get(key string) any {
	for _, m := range o {
		if m.key == key {
			return m.val
		}
	}
	return nil
}

// MarshalJSON writes the members in order.
func (o avroObject) MarshalJSON() ([]byte, error) {
	buf := []byte{'{'}
	for k, m := range o {
		if k > 0 {
			buf = append(buf, ',')
		}
		buf = appendString(buf, m.key)
		buf = append(buf, ':')
		v, err := json.Marshal(m.val)
		if err != nil {
			return nil, err
		}
		buf = append(buf, v...)
	}
	return append(buf, '}'), nil
}
