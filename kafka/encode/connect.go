package encode

import (
	"encoding/json"

	"github.com/apache/arrow-go/v18/arrow"
)

// ConnectSchema is the Kafka Connect JSON schema (JsonConverter with
// schemas.enable=true) of the rows NewJSONWithOptions writes with opts, so
// that Connect sinks can read flightsink's records: {"schema": <this>,
// "payload": <row>}. Types follow the JSON mapping: timestamps are int64
// Connect Timestamps only as unix_millis (strings as rfc3339), dates and
// times are strings, decimals strings (doubles with DecimalAsNumber).
func ConnectSchema(schema *arrow.Schema, opts JSONOptions) ([]byte, error) {
	fields := make([]any, 0, schema.NumFields())
	for _, f := range schema.Fields() {
		s, err := connectType(f.Type, f.Name, opts)
		if err != nil {
			return nil, err
		}
		s["field"] = f.Name
		s["optional"] = f.Nullable
		fields = append(fields, s)
	}
	return json.Marshal(map[string]any{"type": "struct", "optional": false, "fields": fields})
}

func connectType(dt arrow.DataType, path string, opts JSONOptions) (map[string]any, error) {
	simple := func(t string) (map[string]any, error) { return map[string]any{"type": t}, nil }
	switch dt := dt.(type) {
	case *arrow.NullType, *arrow.StringType, *arrow.LargeStringType, *arrow.StringViewType,
		*arrow.Date32Type, *arrow.Date64Type, *arrow.Time32Type, *arrow.Time64Type:
		return simple("string")
	case *arrow.BooleanType:
		return simple("boolean")
	case *arrow.Int8Type:
		return simple("int8")
	case *arrow.Int16Type, *arrow.Uint8Type:
		return simple("int16")
	case *arrow.Int32Type, *arrow.Uint16Type:
		return simple("int32")
	case *arrow.Int64Type, *arrow.Uint32Type, *arrow.DurationType:
		return simple("int64")
	case *arrow.Float16Type, *arrow.Float32Type:
		return simple("float")
	case *arrow.Float64Type:
		return simple("double")
	case *arrow.BinaryType, *arrow.LargeBinaryType, *arrow.BinaryViewType, *arrow.FixedSizeBinaryType:
		return simple("bytes")
	case *arrow.Decimal32Type, *arrow.Decimal64Type, *arrow.Decimal128Type, *arrow.Decimal256Type:
		if opts.DecimalAsNumber {
			return simple("double")
		}
		return simple("string")
	case *arrow.TimestampType:
		switch opts.TimestampFormat {
		case "unix_millis":
			return map[string]any{"type": "int64", "name": "org.apache.kafka.connect.data.Timestamp", "version": 1}, nil
		case "unix_micros":
			return simple("int64")
		}
		return simple("string")
	case *arrow.ListType:
		return connectArray(dt.ElemField(), path, opts)
	case *arrow.LargeListType:
		return connectArray(dt.ElemField(), path, opts)
	case *arrow.FixedSizeListType:
		return connectArray(dt.ElemField(), path, opts)
	case *arrow.ListViewType:
		return connectArray(dt.ElemField(), path, opts)
	case *arrow.LargeListViewType:
		return connectArray(dt.ElemField(), path, opts)
	case *arrow.StructType:
		fields := make([]any, 0, dt.NumFields())
		for _, f := range dt.Fields() {
			s, err := connectType(f.Type, joinPath(path, f.Name), opts)
			if err != nil {
				return nil, err
			}
			s["field"], s["optional"] = f.Name, f.Nullable
			fields = append(fields, s)
		}
		return map[string]any{"type": "struct", "fields": fields}, nil
	case *arrow.MapType:
		k, err := connectType(dt.KeyType(), joinPath(path, "key"), opts)
		if err != nil {
			return nil, err
		}
		v, err := connectType(dt.ItemType(), joinPath(path, "value"), opts)
		if err != nil {
			return nil, err
		}
		v["optional"] = dt.ItemField().Nullable
		if isStringType(dt.KeyType()) {
			return map[string]any{"type": "map", "keys": k, "values": v}, nil
		}
		k["field"], k["optional"] = "key", false
		v["field"] = "value"
		return map[string]any{"type": "array", "items": map[string]any{"type": "struct", "fields": []any{k, v}}}, nil
	case *arrow.DictionaryType:
		return connectType(dt.ValueType, path, opts)
	case *arrow.RunEndEncodedType:
		return connectType(dt.Encoded(), path, opts)
	}
	return nil, &FieldError{Field: path, Reason: "Kafka Connect's JSON schema has no type for " + dt.String()}
}

func connectArray(elem arrow.Field, path string, opts JSONOptions) (map[string]any, error) {
	items, err := connectType(elem.Type, joinPath(path, elem.Name), opts)
	if err != nil {
		return nil, err
	}
	items["optional"] = elem.Nullable
	return map[string]any{"type": "array", "items": items}, nil
}

func isStringType(dt arrow.DataType) bool {
	switch dt.ID() {
	case arrow.STRING, arrow.LARGE_STRING, arrow.STRING_VIEW:
		return true
	}
	return false
}
