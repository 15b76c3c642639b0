package encode

import (
	"encoding/json"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
)

// JSON Schema mapping
//
// JSONSchema derives a JSON Schema (draft-07) that every row
// NewJSONWithOptions writes with the same options validates against, so
// that a schema registry's JSON Schema serdes (Confluent's
// KafkaJsonSchemaDeserializer, confluent_kafka's JSONDeserializer) can read
// and check the values. A row is an object with one property per column,
// in schema order; non-nullable columns are "required", and no other
// properties are allowed ("additionalProperties": false, a closed content
// model, so that adding a nullable column is a backward-compatible
// change).
//
//	Arrow type                          JSON Schema
//	nullable T                          {"oneOf": [{"type": "null"}, T]}
//	null                                {"type": "null"}
//	bool                                {"type": "boolean"}
//	int8 … int64, uint8 … uint64        {"type": "integer"}
//	halffloat, float, double            {"type": ["number", "null"]} (NaN and ±Inf are written as null)
//	decimal…                            {"type": "string"}, or {"type": "number"} with DecimalAsNumber
//	string, large_string, string_view   {"type": "string"}
//	binary, …, fixed_size_binary        {"type": "string", "contentEncoding": "base64"}
//	date32, date64, time32, time64      {"type": "string"}
//	timestamp                           {"type": "string"} (rfc3339), {"type": "integer"} (unix_*)
//	duration                            {"type": "integer"}
//	list, large_list, list_view, …      {"type": "array", "items": T}
//	struct                              {"type": "object", "properties": …, "required": […],
//	                                     "additionalProperties": false}
//	map<string-like, V>                 {"type": "object", "additionalProperties": V}
//	map<other K, V>                     {"type": "array", "items": {object {key: K, value: V}, both required}}
//	dictionary, run_end_encoded         the value type's schema
//	union, interval, extension          *FieldError (unsupported)
//
// Columns (and struct fields) with the same name are refused with a
// *FieldError: a JSON Schema object cannot describe both.

// JSONSchemaDraft is the "$schema" of the schemas JSONSchema derives.
const JSONSchemaDraft = "http://json-schema.org/draft-07/schema#"

// JSONSchema derives the JSON Schema (compact text) of the rows
// NewJSONWithOptions(schema, opts) writes: an object schema with the
// given title. See the mapping above.
func JSONSchema(schema *arrow.Schema, title string, opts JSONOptions) (string, error) {
	obj, err := jsonSchemaObject(schema.Fields(), "", &opts)
	if err != nil {
		return "", err
	}
	return jsonSchemaText(obj, title)
}

// JSONValueSchema derives the JSON Schema of one column's values on their
// own, as NewJSONValue writes them (a null is not described: it is
// written as no value at all).
func JSONValueSchema(field arrow.Field, title string, opts JSONOptions) (string, error) {
	typ, _, err := jsonSchemaType(field.Type, field.Name, &opts)
	if err != nil {
		return "", err
	}
	return jsonSchemaText(typ, title)
}

// jsonSchemaText puts "$schema" and "title" before the members of typ.
func jsonSchemaText(typ avroObject, title string) (string, error) {
	doc := append(avroObject{{"$schema", JSONSchemaDraft}, {"title", title}}, typ...)
	text, err := json.Marshal(doc)
	if err != nil {
		return "", fmt.Errorf("encode: JSON Schema: %w", err)
	}
	return string(text), nil
}

// jsonSchemaObject is the schema of an object with fields fs.
func jsonSchemaObject(fs []arrow.Field, path string, o *JSONOptions) (avroObject, error) {
	props := make(avroObject, 0, len(fs))
	required := []string{}
	seen := make(map[string]bool, len(fs))
	for _, f := range fs {
		fpath := joinPath(path, f.Name)
		if seen[f.Name] {
			return nil, &FieldError{Field: fpath, Reason: fmt.Sprintf(
				"duplicate field name %q (a JSON Schema object cannot describe two members of one name)", f.Name)}
		}
		seen[f.Name] = true
		typ, err := jsonSchemaValue(f.Type, f.Nullable, fpath, o)
		if err != nil {
			return nil, err
		}
		props = append(props, avroMember{f.Name, typ})
		if !f.Nullable {
			required = append(required, f.Name)
		}
	}
	obj := avroObject{{"type", "object"}, {"properties", props}}
	if len(required) > 0 {
		obj = append(obj, avroMember{"required", required})
	}
	return append(obj, avroMember{"additionalProperties", false}), nil
}

// jsonSchemaValue is the schema of a position holding values of dt: null
// allowed when nullable.
func jsonSchemaValue(dt arrow.DataType, nullable bool, path string, o *JSONOptions) (avroObject, error) {
	typ, null, err := jsonSchemaType(dt, path, o)
	if err != nil || !nullable || null {
		return typ, err
	}
	return avroObject{{"oneOf", []any{avroObject{{"type", "null"}}, typ}}}, nil
}

// jsonSchemaType is the schema of values of dt, and whether it already
// allows null.
func jsonSchemaType(dt arrow.DataType, path string, o *JSONOptions) (avroObject, bool, error) {
	simple := func(t string) (avroObject, bool, error) { return avroObject{{"type", t}}, false, nil }
	switch dt := dt.(type) {
	case *arrow.NullType:
		return avroObject{{"type", "null"}}, true, nil
	case *arrow.BooleanType:
		return simple("boolean")
	case *arrow.Int8Type, *arrow.Int16Type, *arrow.Int32Type, *arrow.Int64Type,
		*arrow.Uint8Type, *arrow.Uint16Type, *arrow.Uint32Type, *arrow.Uint64Type, *arrow.DurationType:
		return simple("integer")
	case *arrow.Float16Type, *arrow.Float32Type, *arrow.Float64Type:
		return avroObject{{"type", []string{"number", "null"}}}, true, nil
	case *arrow.Decimal32Type, *arrow.Decimal64Type, *arrow.Decimal128Type, *arrow.Decimal256Type:
		if o.DecimalAsNumber {
			return simple("number")
		}
		return simple("string")
	case *arrow.StringType, *arrow.LargeStringType, *arrow.StringViewType,
		*arrow.Date32Type, *arrow.Date64Type, *arrow.Time32Type, *arrow.Time64Type:
		return simple("string")
	case *arrow.BinaryType, *arrow.LargeBinaryType, *arrow.BinaryViewType, *arrow.FixedSizeBinaryType:
		return avroObject{{"type", "string"}, {"contentEncoding", "base64"}}, false, nil
	case *arrow.TimestampType:
		if o.TimestampFormat == "unix_millis" || o.TimestampFormat == "unix_micros" {
			return simple("integer")
		}
		return simple("string")
	case *arrow.ListType:
		return jsonSchemaArray(dt.ElemField(), path, o)
	case *arrow.LargeListType:
		return jsonSchemaArray(dt.ElemField(), path, o)
	case *arrow.FixedSizeListType:
		return jsonSchemaArray(dt.ElemField(), path, o)
	case *arrow.ListViewType:
		return jsonSchemaArray(dt.ElemField(), path, o)
	case *arrow.LargeListViewType:
		return jsonSchemaArray(dt.ElemField(), path, o)
	case *arrow.StructType:
		obj, err := jsonSchemaObject(dt.Fields(), path, o)
		return obj, false, err
	case *arrow.MapType:
		kf, vf := dt.KeyField(), dt.ItemField()
		val, err := jsonSchemaValue(vf.Type, vf.Nullable, joinPath(path, vf.Name), o)
		if err != nil {
			return nil, false, err
		}
		if isStringType(kf.Type) {
			return avroObject{{"type", "object"}, {"additionalProperties", val}}, false, nil
		}
		key, _, err := jsonSchemaType(kf.Type, joinPath(path, kf.Name), o)
		if err != nil {
			return nil, false, err
		}
		entry := avroObject{{"type", "object"}, {"properties", avroObject{{"key", key}, {"value", val}}},
			{"required", []string{"key", "value"}}, {"additionalProperties", false}}
		return avroObject{{"type", "array"}, {"items", entry}}, false, nil
	case *arrow.DictionaryType:
		return jsonSchemaType(dt.ValueType, path, o)
	case *arrow.RunEndEncodedType:
		return jsonSchemaType(dt.Encoded(), path, o)
	}
	return nil, false, unsupported(path, dt)
}

func jsonSchemaArray(elem arrow.Field, path string, o *JSONOptions) (avroObject, bool, error) {
	items, err := jsonSchemaValue(elem.Type, elem.Nullable, joinPath(path, elem.Name), o)
	if err != nil {
		return nil, false, err
	}
	return avroObject{{"type", "array"}, {"items", items}}, false, nil
}

// JSONValue writes one column's values on their own, as the JSON encoder
// writes them inside a row's object (a bare JSON key).
//
// Build it once per stream with NewJSONValue over a one-column schema,
// call Bind for every batch and then AppendRow for each row; the caller
// decides what a null means (a null is written as `null`).
type JSONValue struct {
	schema *arrow.Schema
	enc    valueEncoder
}

// NewJSONValue builds the value writer of schema's only column. It returns
// a *FieldError when its type cannot be encoded.
func NewJSONValue(schema *arrow.Schema, opts JSONOptions) (*JSONValue, error) {
	if schema.NumFields() != 1 {
		return nil, fmt.Errorf("encode: NewJSONValue takes one column, got %d", schema.NumFields())
	}
	f := schema.Field(0)
	enc, err := newValueEncoder(f.Type, f.Name, &opts)
	if err != nil {
		return nil, err
	}
	return &JSONValue{schema: schema, enc: enc}, nil
}

// Bind points the writer at rec's column (rec has the schema given to
// NewJSONValue); rec is not retained.
func (e *JSONValue) Bind(rec arrow.RecordBatch) error {
	if err := checkSchema(e.schema, rec.Schema()); err != nil {
		return err
	}
	e.enc.bind(rec.Column(0))
	return nil
}

// AppendRow appends the JSON text of row's value.
func (e *JSONValue) AppendRow(dst []byte, row int) []byte { return e.enc.appendValue(dst, row) }
