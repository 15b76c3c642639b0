package put

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
)

// schemaTypes are the type names --schema takes (docs/put.md).
var schemaTypes = map[string]arrow.DataType{
	"bool": arrow.FixedWidthTypes.Boolean, "boolean": arrow.FixedWidthTypes.Boolean,
	"int8": arrow.PrimitiveTypes.Int8, "int16": arrow.PrimitiveTypes.Int16,
	"int32": arrow.PrimitiveTypes.Int32, "int64": arrow.PrimitiveTypes.Int64,
	"uint8": arrow.PrimitiveTypes.Uint8, "uint16": arrow.PrimitiveTypes.Uint16,
	"uint32": arrow.PrimitiveTypes.Uint32, "uint64": arrow.PrimitiveTypes.Uint64,
	"float32": arrow.PrimitiveTypes.Float32, "float": arrow.PrimitiveTypes.Float32,
	"float64": arrow.PrimitiveTypes.Float64, "double": arrow.PrimitiveTypes.Float64,
	"string": arrow.BinaryTypes.String, "utf8": arrow.BinaryTypes.String,
	"large_string": arrow.BinaryTypes.LargeString, "binary": arrow.BinaryTypes.Binary,
	"date32": arrow.FixedWidthTypes.Date32, "date": arrow.FixedWidthTypes.Date32,
}

const schemaTypeHelp = "bool, int8..int64, uint8..uint64, float32, float64, string, large_string, binary, date32, " +
	"timestamp[s|ms|us|ns] or timestamp[UNIT,ZONE], decimal(P,S)"

// parseSchemaFlag reads --schema: "name:type,name:type,..." or "@FILE"
// holding the same text (commas or new lines between columns). Columns
// are nullable unless the type ends in "not null".
func parseSchemaFlag(s string) (*arrow.Schema, error) {
	if path, ok := strings.CutPrefix(s, "@"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("put: --schema: %w", err)
		}
		s = strings.ReplaceAll(string(b), "\n", ",")
	}
	var fields []arrow.Field
	for _, col := range splitTopLevel(s) {
		if col = strings.TrimSpace(col); col == "" {
			continue
		}
		name, typ, ok := strings.Cut(col, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("put: --schema: %q is not NAME:TYPE", col)
		}
		f := arrow.Field{Name: strings.TrimSpace(name), Nullable: true}
		typ = strings.TrimSpace(typ)
		if t, ok := strings.CutSuffix(strings.ToLower(typ), " not null"); ok {
			typ, f.Nullable = strings.TrimSpace(typ[:len(t)]), false
		}
		dt, err := parseTypeName(typ)
		if err != nil {
			return nil, fmt.Errorf("put: --schema: column %q: %w", f.Name, err)
		}
		f.Type = dt
		fields = append(fields, f)
	}
	if len(fields) == 0 {
		return nil, fmt.Errorf("put: --schema is empty; give NAME:TYPE,... (types: %s)", schemaTypeHelp)
	}
	seen := map[string]bool{}
	for _, f := range fields {
		if seen[f.Name] {
			return nil, fmt.Errorf("put: --schema: column %q is named twice", f.Name)
		}
		seen[f.Name] = true
	}
	return arrow.NewSchema(fields, nil), nil
}

// splitTopLevel splits at commas outside brackets and parentheses.
func splitTopLevel(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '[', '(':
			depth++
		case ']', ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

func parseTypeName(typ string) (arrow.DataType, error) {
	lower := strings.ToLower(typ)
	if dt, ok := schemaTypes[lower]; ok {
		return dt, nil
	}
	if strings.HasPrefix(lower, "timestamp") {
		unit, zone, _ := strings.Cut(strings.Trim(typ[len("timestamp"):], "[]() "), ",")
		unit, zone = strings.ToLower(strings.TrimSpace(unit)), strings.TrimSpace(zone)
		if unit == "" {
			unit = "us"
		}
		units := map[string]arrow.TimeUnit{"s": arrow.Second, "ms": arrow.Millisecond, "us": arrow.Microsecond, "ns": arrow.Nanosecond}
		u, ok := units[unit]
		if !ok {
			return nil, fmt.Errorf("timestamp unit %q is not s, ms, us or ns", unit)
		}
		if strings.EqualFold(zone, "utc") {
			zone = "UTC"
		}
		return &arrow.TimestampType{Unit: u, TimeZone: zone}, nil
	}
	if args, ok := strings.CutPrefix(lower, "decimal"); ok {
		p, sc, _ := strings.Cut(strings.Trim(args, "()[] "), ",")
		prec, err1 := strconv.Atoi(strings.TrimSpace(p))
		scale, err2 := strconv.Atoi(strings.TrimSpace(sc))
		if err1 != nil || err2 != nil || prec < 1 || prec > 76 || scale < 0 || scale > prec {
			return nil, fmt.Errorf("%q is not decimal(P,S) with 1 <= P <= 76 and 0 <= S <= P", typ)
		}
		if prec <= 38 {
			return &arrow.Decimal128Type{Precision: int32(prec), Scale: int32(scale)}, nil
		}
		return &arrow.Decimal256Type{Precision: int32(prec), Scale: int32(scale)}, nil
	}
	return nil, fmt.Errorf("type %q is not one of %s", typ, schemaTypeHelp)
}
