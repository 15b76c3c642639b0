package encode

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/decimal256"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/hamba/avro/v2"
)

// avroUnhex decodes hex with spaces, for hand-written datums.
func avroUnhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAvroExactBytes checks hand-encoded rows byte for byte.
func TestAvroExactBytes(t *testing.T) {
	mem := checkedMem(t)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "ok", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "amount", Type: arrow.PrimitiveTypes.Float64},
		{Name: "tags", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32), Nullable: true},
		{Name: "price", Type: &arrow.Decimal128Type{Precision: 5, Scale: 2}, Nullable: true},
		{Name: "big", Type: arrow.PrimitiveTypes.Uint64},
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}},
		{Name: "day", Type: arrow.FixedWidthTypes.Date32},
		{Name: "attrs", Type: arrow.MapOf(arrow.BinaryTypes.String, arrow.PrimitiveTypes.Int64)},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	b.Field(0).(*array.Int64Builder).AppendValues([]int64{1, -1, 64}, nil)
	names := b.Field(1).(*array.StringBuilder)
	names.Append("hé")
	names.AppendNull()
	names.Append("")
	b.Field(2).(*array.BooleanBuilder).AppendValues([]bool{true, false, false}, []bool{true, false, true})
	b.Field(3).(*array.Float64Builder).AppendValues([]float64{1, -2.5, 0}, nil)
	tags := b.Field(4).(*array.ListBuilder)
	tagVals := tags.ValueBuilder().(*array.Int32Builder)
	tags.Append(true)
	tagVals.Append(1)
	tagVals.AppendNull()
	tags.AppendNull()
	tags.AppendEmptyValue()
	prices := b.Field(5).(*array.Decimal128Builder)
	prices.Append(decimal128.FromI64(128))
	prices.Append(decimal128.FromI64(-128))
	prices.AppendNull()
	b.Field(6).(*array.Uint64Builder).AppendValues([]uint64{math.MaxUint64, 0, 128}, nil)
	b.Field(7).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{1767323045678, -1, 0}, nil)
	b.Field(8).(*array.Date32Builder).AppendValues([]arrow.Date32{20455, -1, 0}, nil)
	attrs := b.Field(9).(*array.MapBuilder)
	attrs.Append(true)
	attrs.KeyBuilder().(*array.StringBuilder).AppendValues([]string{"a", "b"}, nil)
	attrs.ItemBuilder().(*array.Int64Builder).AppendValues([]int64{1, -1}, nil)
	attrs.Append(true)
	attrs.Append(true)
	attrs.KeyBuilder().(*array.StringBuilder).Append("z")
	attrs.ItemBuilder().(*array.Int64Builder).Append(0)
	rec := b.NewRecordBatch()
	defer rec.Release()

	want := []string{
		// id | name "hé" | ok true | 1.0 | [1, null] | 1.28 = 0x0080 | MaxUint64 = 00 ff*8 | ts | 2026-01-02 | {"a":1,"b":-1}
		"02" + " 02 06 68 c3 a9" + " 02 01" + " 00 00 00 00 00 00 f0 3f" + " 02 04 02 02 00 00" + " 02 04 00 80" +
			" 12 00 ff ff ff ff ff ff ff ff" + " dc bc cc ca ef 66" + " ce bf 02" + " 04 02 61 02 02 02 62 02 01 00",
		// -1 | null | null | -2.5 | null | -1.28 = 0x80 | 0 | -1 | 1969-12-31 | {}
		"01" + " 00" + " 00" + " 00 00 00 00 00 00 04 c0" + " 00" + " 02 02 80" + " 02 00" + " 01" + " 01" + " 00",
		// 64 | "" | false | 0.0 | [] | null | 128 = 0x0080 | 0 | 1970-01-01 | {"z":0}
		"80 01" + " 02 00" + " 02 00" + " 00 00 00 00 00 00 00 00" + " 02 00" + " 00" + " 04 00 80" + " 00" + " 00" + " 02 02 7a 02 00 00",
	}
	rows, err := avroRows(rec)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range want {
		if !bytes.Equal(rows[i], avroUnhex(t, w)) {
			t.Errorf("row %d:\n got % x\nwant %s", i, rows[i], w)
		}
	}
	text, err := AvroSchema(schema, "Row", "")
	if err != nil {
		t.Fatal(err)
	}
	avroCheckLibrary(t, text, rec, rows, true)
}

// TestAvroDecimalBytes checks the minimal two's complement of decimals at
// byte boundaries, for every decimal width and negative scales.
func TestAvroDecimalBytes(t *testing.T) {
	for _, tc := range []struct {
		dt   arrow.DataType
		js   string
		want []string // Avro bytes (length, then the value)
	}{
		{&arrow.Decimal32Type{Precision: 9, Scale: 0}, `["0", "1", "-1", "127", "128", "-128", "-129", "255", "32767", "32768", "-32768", "-32769", "999999999", "-999999999"]`,
			[]string{"02 00", "02 01", "02 ff", "02 7f", "04 00 80", "02 80", "04 ff 7f", "04 00 ff", "04 7f ff", "06 00 80 00", "04 80 00", "06 ff 7f ff", "08 3b 9a c9 ff", "08 c4 65 36 01"}},
		{&arrow.Decimal64Type{Precision: 18, Scale: 2}, `["-9999999999999999.99", "9999999999999999.99", "-0.01"]`,
			[]string{"10 f2 1f 49 4c 58 9c 00 01", "10 0d e0 b6 b3 a7 63 ff ff", "02 ff"}},
		{&arrow.Decimal128Type{Precision: 38, Scale: 0}, `["18446744073709551616", "-18446744073709551616", "99999999999999999999999999999999999999", "-99999999999999999999999999999999999999"]`,
			[]string{"12 01 00 00 00 00 00 00 00 00", "12 ff 00 00 00 00 00 00 00 00",
				"20 4b 3b 4c a8 5a 86 c4 7a 09 8a 22 3f ff ff ff ff", "20 b4 c4 b3 57 a5 79 3b 85 f6 75 dd c0 00 00 00 01"}},
		{&arrow.Decimal256Type{Precision: 76, Scale: 4}, `["0.0000", "-0.0128", "1844674407370955.1616"]`,
			[]string{"02 00", "02 80", "12 01 00 00 00 00 00 00 00 00"}},
		// Negative scales are multiplied out: decimal(9, -2) 12 (unscaled) is 1200 = 0x04b0.
		{&arrow.Decimal32Type{Precision: 9, Scale: -2}, `["1200", "-1200", "0", "-100"]`,
			[]string{"04 04 b0", "04 fb 50", "02 00", "02 9c"}},
		// decimal256(76, -20): unscaled -1 is -10^20.
		{&arrow.Decimal256Type{Precision: 76, Scale: -20}, `["-100000000000000000000"]`,
			[]string{"12 fa 94 38 a1 d2 9c f0 00 00"}},
	} {
		mem := checkedMem(t)
		arr := arrayFromJSON(t, mem, tc.dt, tc.js)
		rec := recordOf(t, []arrow.Array{arr}, "v")
		arr.Release()
		rec = avroWithNullable(rec, false)
		rows, err := avroRows(rec)
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range tc.want {
			if !bytes.Equal(rows[i], avroUnhex(t, w)) {
				t.Errorf("%s element %d:\n got % x\nwant %s", tc.dt, i, rows[i], w)
			}
		}
		text, err := AvroSchema(rec.Schema(), "Row", "")
		if err != nil {
			t.Fatal(err)
		}
		avroCheckLibrary(t, text, rec, rows, false)
		rec.Release()
	}
}

// avroWithNullable returns rec (released) with every top-level field's
// nullability set to nullable.
func avroWithNullable(rec arrow.RecordBatch, nullable bool) arrow.RecordBatch {
	fields := slices.Clone(rec.Schema().Fields())
	for k := range fields {
		fields[k].Nullable = nullable
	}
	out := array.NewRecordBatch(arrow.NewSchema(fields, nil), rec.Columns(), rec.NumRows())
	rec.Release()
	return out
}

func TestAvroSchemaText(t *testing.T) {
	i64, str := arrow.PrimitiveTypes.Int64, arrow.BinaryTypes.String
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: i64},
		{Name: "name", Type: str, Nullable: true},
		{Name: "wait", Type: arrow.FixedWidthTypes.Duration_ms, Nullable: true},
		{Name: "s", Type: arrow.StructOf(
			arrow.Field{Name: "h", Type: &arrow.FixedSizeBinaryType{ByteWidth: 4}},
			arrow.Field{Name: "t", Type: arrow.StructOf(arrow.Field{Name: "x", Type: arrow.FixedWidthTypes.Date32, Nullable: true})},
		), Nullable: true},
		{Name: "l", Type: arrow.ListOf(&arrow.FixedSizeBinaryType{ByteWidth: 2})},
		{Name: "m", Type: arrow.MapOf(arrow.PrimitiveTypes.Int32, arrow.FixedWidthTypes.Duration_us)},
		{Name: "ms", Type: arrow.MapOf(str, arrow.ListOf(arrow.FixedWidthTypes.Duration_s))},
		{Name: "d", Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: &arrow.Decimal128Type{Precision: 10, Scale: -2}}},
		{Name: "n", Type: arrow.Null, Nullable: true},
		{Name: "ts", Type: arrow.RunEndEncodedOf(arrow.PrimitiveTypes.Int32, arrow.FixedWidthTypes.Timestamp_ns), Nullable: true},
		{Name: "u", Type: arrow.PrimitiveTypes.Uint64},
	}, nil)
	got, err := AvroSchema(schema, "Orders", "com.example")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"record","name":"Orders","namespace":"com.example","fields":[` +
		`{"name":"id","type":"long"},` +
		`{"name":"name","type":["null","string"],"default":null},` +
		`{"name":"wait","type":["null","long"],"doc":"duration in milliseconds","default":null},` +
		`{"name":"s","type":["null",{"type":"record","name":"s","namespace":"com.example.Orders","fields":[` +
		`{"name":"h","type":{"type":"fixed","name":"h","namespace":"com.example.Orders.s","size":4}},` +
		`{"name":"t","type":{"type":"record","name":"t","namespace":"com.example.Orders.s","fields":[` +
		`{"name":"x","type":["null",{"type":"int","logicalType":"date"}],"default":null}]}}]}],"default":null},` +
		`{"name":"l","type":{"type":"array","items":["null",{"type":"fixed","name":"item","namespace":"com.example.Orders.l","size":2}]}},` +
		`{"name":"m","type":{"type":"array","items":{"type":"record","name":"entries","namespace":"com.example.Orders.m","fields":[` +
		`{"name":"key","type":"int"},` +
		`{"name":"value","type":["null","long"],"doc":"duration in microseconds","default":null}]}}},` +
		`{"name":"ms","type":{"type":"map","values":["null",{"type":"array","items":["null","long"]}]},"doc":"values: items: duration in seconds"},` +
		`{"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":12,"scale":0}},` +
		`{"name":"n","type":"null","default":null},` +
		`{"name":"ts","type":["null",{"type":"long","logicalType":"timestamp-nanos"}],"default":null},` +
		`{"name":"u","type":{"type":"bytes","logicalType":"decimal","precision":20,"scale":0}}]}`
	if got != want {
		t.Fatalf("schema\n got %s\nwant %s", got, want)
	}
	parsed, err := parseAvro(got)
	if err != nil {
		t.Fatalf("library rejects the schema: %v", err)
	}
	names := map[string]bool{}
	collectAvroNames(parsed, names)
	for _, n := range []string{"com.example.Orders", "com.example.Orders.s", "com.example.Orders.s.h", "com.example.Orders.s.t",
		"com.example.Orders.l.item", "com.example.Orders.m.entries"} {
		if !names[n] {
			t.Errorf("library does not see named type %s (has %v)", n, names)
		}
	}
	if _, err := AvroSchema(arrow.NewSchema(nil, nil), "Empty", ""); err != nil {
		t.Fatal(err)
	}
}

// collectAvroNames records the full names of the named types in s.
func collectAvroNames(s avro.Schema, names map[string]bool) {
	switch s := s.(type) {
	case *avro.RecordSchema:
		names[s.FullName()] = true
		for _, f := range s.Fields() {
			collectAvroNames(f.Type(), names)
		}
	case *avro.FixedSchema:
		names[s.FullName()] = true
	case *avro.UnionSchema:
		for _, b := range s.Types() {
			collectAvroNames(b, names)
		}
	case *avro.ArraySchema:
		collectAvroNames(s.Items(), names)
	case *avro.MapSchema:
		collectAvroNames(s.Values(), names)
	}
}

func TestAvroSchemaErrors(t *testing.T) {
	i32 := arrow.PrimitiveTypes.Int32
	union := arrow.SparseUnionOf([]arrow.Field{{Name: "a", Type: i32}}, []arrow.UnionTypeCode{0})
	ext := &testExtType{arrow.ExtensionBase{Storage: i32}}
	for _, tc := range []struct {
		fields            []arrow.Field
		field, wantReason string
	}{
		{[]arrow.Field{{Name: "x", Type: union}}, "x", "unsupported type union (sparse_union<a: type=int32=0>)"},
		{[]arrow.Field{{Name: "x", Type: arrow.FixedWidthTypes.MonthDayNanoInterval}}, "x", "unsupported type interval (month_day_nano_interval)"},
		{[]arrow.Field{{Name: "x", Type: ext}}, "x", "unsupported type extension (extension_type<storage=int32>)"},
		{[]arrow.Field{{Name: "s", Type: arrow.StructOf(arrow.Field{Name: "u", Type: union})}}, "s.u", ""},
		{[]arrow.Field{{Name: "l", Type: arrow.ListOf(arrow.FixedWidthTypes.DayTimeInterval)}}, "l.item", ""},
		{[]arrow.Field{{Name: "m", Type: arrow.MapOf(arrow.BinaryTypes.String, union)}}, "m.value", ""},
		{[]arrow.Field{{Name: "m", Type: arrow.MapOf(union, i32)}}, "m.key", ""},
		{[]arrow.Field{{Name: "d", Type: &arrow.DictionaryType{IndexType: i32, ValueType: ext}}}, "d", ""},
		{[]arrow.Field{{Name: "r", Type: arrow.RunEndEncodedOf(i32, union)}}, "r", ""},
		{[]arrow.Field{{Name: "ok", Type: i32}, {Name: "bad-name", Type: i32}}, "bad-name",
			`invalid Avro field name "bad-name" (Avro names must match [A-Za-z_][A-Za-z0-9_]*)`},
		{[]arrow.Field{{Name: "1st", Type: i32}}, "1st", ""},
		{[]arrow.Field{{Name: "", Type: i32}}, "", ""},
		{[]arrow.Field{{Name: "héllo", Type: i32}}, "héllo", ""},
		{[]arrow.Field{{Name: "s", Type: arrow.StructOf(arrow.Field{Name: "a.b", Type: i32})}}, "s.a.b", ""},
		{[]arrow.Field{{Name: "x", Type: i32}, {Name: "x", Type: i32}}, "x", `duplicate field name "x" (Avro record fields must be unique)`},
		{[]arrow.Field{{Name: "s", Type: arrow.StructOf(arrow.Field{Name: "a", Type: i32}, arrow.Field{Name: "a", Type: i32})}}, "s.a", ""},
		{[]arrow.Field{{Name: "d", Type: &arrow.Decimal128Type{Precision: 10, Scale: -1001}}}, "d", ""},
	} {
		schema := arrow.NewSchema(tc.fields, nil)
		_, errSchema := AvroSchema(schema, "Row", "ns")
		_, errEnc := NewAvro(schema)
		for _, err := range []error{errSchema, errEnc} {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("%v: error = %v, want *FieldError", tc.fields, err)
				continue
			}
			if fe.Field != tc.field {
				t.Errorf("%v: Field = %q, want %q", tc.fields, fe.Field, tc.field)
			}
			if tc.wantReason != "" && fe.Reason != tc.wantReason {
				t.Errorf("%v: Reason = %q, want %q", tc.fields, fe.Reason, tc.wantReason)
			}
		}
	}
	ok := arrow.NewSchema([]arrow.Field{{Name: "x", Type: i32}}, nil)
	for _, names := range [][2]string{{"", ""}, {"1x", ""}, {"a-b", ""}, {"Row", "com..x"}, {"Row", ".x"}, {"Row", "x."}, {"Row", "a.1b"}} {
		if _, err := AvroSchema(ok, names[0], names[1]); err == nil {
			t.Errorf("AvroSchema(name %q, namespace %q) succeeded", names[0], names[1])
		} else if errors.As(err, new(*FieldError)) {
			t.Errorf("AvroSchema(name %q, namespace %q) = %v, want a plain error", names[0], names[1], err)
		}
	}
	for _, names := range [][2]string{{"Row", ""}, {"_r0", "a"}, {"R", "com.example_1.x"}} {
		if _, err := AvroSchema(ok, names[0], names[1]); err != nil {
			t.Errorf("AvroSchema(name %q, namespace %q): %v", names[0], names[1], err)
		}
	}
}

func TestAvroBindAndAppend(t *testing.T) {
	mem := checkedMem(t)
	a := arrayFromJSON(t, mem, arrow.PrimitiveTypes.Int64, `[7, 8]`)
	defer a.Release()
	b := arrayFromJSON(t, mem, arrow.PrimitiveTypes.Int32, `[1, 2]`)
	defer b.Release()
	recA := recordOf(t, []arrow.Array{a}, "x")
	defer recA.Release()
	enc, err := NewAvro(recA.Schema())
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.Bind(recA); err != nil {
		t.Fatal(err)
	}
	out := enc.AppendRow([]byte("prefix "), 1)
	out = enc.AppendRow(out, 0)
	if want := "prefix \x02\x10\x02\x0e"; string(out) != want {
		t.Fatalf("got %q, want %q", out, want)
	}
	for name, rec := range map[string]arrow.RecordBatch{
		"type":    recordOf(t, []arrow.Array{b}, "x"),
		"name":    recordOf(t, []arrow.Array{a}, "y"),
		"columns": recordOf(t, []arrow.Array{a, a}, "x", "y"),
	} {
		if err := enc.Bind(rec); err == nil {
			t.Errorf("%s mismatch: Bind succeeded", name)
		}
		rec.Release()
	}
	empty := array.NewRecordBatch(arrow.NewSchema(nil, nil), nil, 2)
	defer empty.Release()
	rows, err := avroRows(empty)
	if err != nil || len(rows) != 2 || len(rows[0]) != 0 {
		t.Fatalf("no columns: %q, %v", rows, err)
	}
}

// avroCases are arrays of every supported type with edge values, on top of
// the JSON encoder's cases.
func avroCases() []valueCase {
	i64, str := arrow.PrimitiveTypes.Int64, arrow.BinaryTypes.String
	nonNull := func(name string, dt arrow.DataType) arrow.Field { return arrow.Field{Name: name, Type: dt} }
	nullMap := arrow.MapOf(arrow.PrimitiveTypes.Int32, str)
	nullMap.SetItemNullable(false)
	ts := func(u arrow.TimeUnit) arrow.DataType { return &arrow.TimestampType{Unit: u} }
	return []valueCase{
		{name: "uint64 edges", build: func(mem memory.Allocator) arrow.Array {
			b := array.NewUint64Builder(mem)
			defer b.Release()
			b.AppendValues([]uint64{0, 1, 127, 128, 255, 256, math.MaxInt64, math.MaxInt64 + 1, math.MaxUint64}, nil)
			b.AppendNull()
			return b.NewArray()
		}},
		{name: "uint8/16/32 edges", build: fromJSON(arrow.PrimitiveTypes.Uint32, `[0, 2147483647, 2147483648, 4294967295, null]`)},
		{name: "int edges", build: fromJSON(arrow.PrimitiveTypes.Int32, `[0, -1, 63, 64, -64, -65, 8191, 8192, -2147483648, 2147483647]`)},
		{name: "decimal128 boundaries", build: fromJSON(&arrow.Decimal128Type{Precision: 38, Scale: 2}, `["-1.28", "1.28", "-1.29", "1.27", "0", null, "-0.01"]`)},
		{name: "decimal32 negative scale", build: func(mem memory.Allocator) arrow.Array {
			b := array.NewDecimal32Builder(mem, &arrow.Decimal32Type{Precision: 9, Scale: -3})
			defer b.Release()
			for _, v := range []int32{5, -123, 0, math.MaxInt32, math.MinInt32} {
				b.Append(decimal.Decimal32(v))
			}
			return b.NewArray()
		}},
		{name: "decimal64 negative scale", build: func(mem memory.Allocator) arrow.Array {
			b := array.NewDecimal64Builder(mem, &arrow.Decimal64Type{Precision: 18, Scale: -19})
			defer b.Release()
			for _, v := range []int64{1, -1, math.MaxInt64, math.MinInt64} {
				b.Append(decimal.Decimal64(v))
			}
			return b.NewArray()
		}},
		{name: "decimal256 negative scale extremes", build: func(mem memory.Allocator) arrow.Array {
			b := array.NewDecimal256Builder(mem, &arrow.Decimal256Type{Precision: 76, Scale: -2})
			defer b.Release()
			nines := new(big.Int).Sub(new(big.Int).Exp(big.NewInt(10), big.NewInt(76), nil), big.NewInt(1))
			for _, v := range []*big.Int{nines, new(big.Int).Neg(nines), big.NewInt(1), big.NewInt(-1), big.NewInt(0)} {
				b.Append(decimal256.FromBigInt(v))
			}
			b.Append(decimal256.New(math.MaxUint64, math.MaxUint64, math.MaxUint64, math.MaxUint64>>1)) // beyond the precision: 2^255-1
			b.Append(decimal256.New(1<<63, 0, 0, 0))                                                    // -2^255
			return b.NewArray()
		}},
		{name: "decimal scale above precision", build: fromJSON(&arrow.Decimal64Type{Precision: 3, Scale: 5}, `["0.00123", "-0.00999"]`)},
		{name: "timestamp[s] saturating", build: fromJSON(ts(arrow.Second), `[9223372036854775, 9223372036854776, -9223372036854775, -9223372036854776, 9223372036854775807]`)},
		{name: "time32[s] saturating", build: fromJSON(arrow.FixedWidthTypes.Time32s, `[2147483, 2147484, -2147483, -2147484, 2147483647]`)},
		{name: "time64[ns] flooring", build: fromJSON(arrow.FixedWidthTypes.Time64ns, `[999, 1000, 1999, -1, -1000, -1001]`)},
		{name: "date64 flooring and saturating", build: fromJSON(arrow.FixedWidthTypes.Date64, `[86399999, -86400001, 9223372036854775807, -9223372036854775808, 185542587187199999, 185542587187200000]`)},
		{name: "timestamp[us] extremes", build: fromJSON(ts(arrow.Microsecond), `[-9223372036854775808, 9223372036854775807]`)},
		{name: "non-nullable struct fields with nulls", build: fromJSON(arrow.StructOf(
			nonNull("a", i64), nonNull("s", str), nonNull("f", &arrow.FixedSizeBinaryType{ByteWidth: 3}),
			nonNull("d", &arrow.Decimal128Type{Precision: 5, Scale: 1}), nonNull("t", ts(arrow.Nanosecond)),
			nonNull("n", arrow.StructOf(nonNull("x", arrow.PrimitiveTypes.Float32), arrow.Field{Name: "y", Type: arrow.FixedWidthTypes.Date32, Nullable: true})),
			nonNull("l", arrow.ListOf(i64)), nonNull("m", arrow.MapOf(str, i64)), nonNull("k", nullMap),
		), `[{"a": null, "s": null, "f": null, "d": null, "t": null, "n": null, "l": null, "m": null, "k": null},
			null,
			{"a": 1, "s": "x", "f": "YWJj", "d": "1.5", "t": 5, "n": {"x": null, "y": null}, "l": [], "m": [], "k": [{"key": 1, "value": "v"}]}]`)},
		{name: "map non-nullable values with nulls", build: func(mem memory.Allocator) arrow.Array {
			// arrow-go's builder refuses nulls in non-nullable map values,
			// so the map is built nullable and retyped.
			m := fromJSON(arrow.MapOf(arrow.PrimitiveTypes.Int32, str), `[[{"key": 1, "value": null}, {"key": 2, "value": "x"}], null]`)(mem)
			defer m.Release()
			data := array.NewData(nullMap, m.Len(), m.Data().Buffers(), m.Data().Children(), m.NullN(), m.Data().Offset())
			defer data.Release()
			return array.MakeFromData(data)
		}},
		{name: "non-nullable list elements with nulls", build: fromJSON(arrow.ListOfNonNullable(str), `[["a", null], null, []]`)},
		{name: "map duplicate keys", build: fromJSON(arrow.MapOf(str, i64), `[[{"key": "a", "value": 1}, {"key": "a", "value": 2}]]`)},
		{name: "map of fixed to list", build: fromJSON(arrow.MapOf(&arrow.FixedSizeBinaryType{ByteWidth: 2}, arrow.ListOf(arrow.FixedWidthTypes.Timestamp_us)),
			`[[{"key": "AAE=", "value": [1, null]}, {"key": "//8=", "value": null}], null, []]`)},
		{name: "struct named like primitives", build: fromJSON(arrow.StructOf(
			arrow.Field{Name: "string", Type: arrow.StructOf(arrow.Field{Name: "record", Type: &arrow.FixedSizeBinaryType{ByteWidth: 1}, Nullable: true}), Nullable: true},
			arrow.Field{Name: "int", Type: arrow.ListOf(arrow.StructOf(arrow.Field{Name: "null", Type: i64, Nullable: true})), Nullable: true},
		), `[{"string": {"record": "AA=="}, "int": [{"null": 1}, null]}, {"string": null, "int": null}]`)},
		{name: "dictionary with null entries", build: func(mem memory.Allocator) arrow.Array {
			dict := fromJSON(arrow.ListOf(i64), `[[1], null, []]`)(mem)
			defer dict.Release()
			idx := fromJSON(arrow.PrimitiveTypes.Uint8, `[0, 1, null, 2, 1, 0]`)(mem)
			defer idx.Release()
			return array.NewDictionaryArray(&arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Uint8, ValueType: arrow.ListOf(i64)}, idx, dict)
		}},
		{name: "run_end_encoded of struct", build: fromJSON(arrow.RunEndEncodedOf(arrow.PrimitiveTypes.Int16,
			arrow.StructOf(arrow.Field{Name: "a", Type: i64, Nullable: true})), `[{"a": 1}, {"a": 1}, null, {"a": null}]`)},
		{name: "fixed_size_list of structs", build: fromJSON(arrow.FixedSizeListOf(2, arrow.StructOf(arrow.Field{Name: "a", Type: str, Nullable: true})),
			`[[{"a": "x"}, null], null, [{"a": null}, {"a": "y"}]]`)},
		{name: "duration in list", build: fromJSON(arrow.LargeListViewOf(arrow.FixedWidthTypes.Duration_s), `[[1, -1, null], []]`)},
	}
}

// allAvroCases are the JSON encoder's edge cases plus avroCases, less the
// one whose field names Avro refuses (see TestAvroSchemaErrors).
func allAvroCases() []valueCase {
	return slices.DeleteFunc(slices.Concat(scalarCases(), nestedCases(), avroCases()), func(tc valueCase) bool {
		return tc.name == "struct with escaped names"
	})
}

// TestAvroCrossCheck encodes every case as a nullable and a non-nullable
// column and checks each row against the library: it decodes to the
// reference value, and the library encodes that value to the same bytes
// (except where its encoding is not canonical). Slices (non-zero offsets)
// must encode like the rows they cover.
func TestAvroCrossCheck(t *testing.T) {
	avroStats.Lock()
	avroStats.decoded, avroStats.sameBytes, avroStats.notCanonical, avroStats.libRefused, avroStats.libLonger = 0, 0, 0, 0, 0
	avroStats.Unlock()
	defer func() {
		avroStats.Lock()
		defer avroStats.Unlock()
		t.Logf("rows decoded by the library: %d; same bytes as the library: %d; not compared: %d non-canonical, %d refused by the library, %d other bytes of the same value from the library",
			avroStats.decoded, avroStats.sameBytes, avroStats.notCanonical, avroStats.libRefused, avroStats.libLonger)
	}()
	for _, tc := range allAvroCases() {
		for _, nullable := range []bool{true, false} {
			t.Run(tc.name+map[bool]string{true: " nullable", false: ""}[nullable], func(t *testing.T) {
				mem := checkedMem(t)
				arr := tc.build(mem)
				defer arr.Release()
				rec := avroWithNullable(recordOf(t, []arrow.Array{arr}, "v"), nullable)
				defer rec.Release()
				text, err := AvroSchema(rec.Schema(), "Row", "test")
				if err != nil {
					t.Fatal(err)
				}
				rows, err := avroRows(rec)
				if err != nil {
					t.Fatal(err)
				}
				avroCheckLibrary(t, text, rec, rows, true)
				for start := 1; start < arr.Len(); start++ {
					sl := array.NewSlice(arr, int64(start), int64(arr.Len()))
					srec := avroWithNullable(recordOf(t, []arrow.Array{sl}, "v"), nullable)
					sl.Release()
					got, err := avroRows(srec)
					srec.Release()
					if err != nil {
						t.Fatal(err)
					}
					for i := range got {
						if !bytes.Equal(got[i], rows[start+i]) {
							t.Errorf("slice [%d:]: row %d = % x, want % x", start, i, got[i], rows[start+i])
						}
					}
				}
			})
		}
	}
}

// avroCheckLibrary decodes each row of rec's datums with the library
// using schema text and compares it with the reference value; with
// libBytes it also has the library encode the reference value and compares
// the bytes, where the library's encoding is canonical.
func avroCheckLibrary(t *testing.T, text string, rec arrow.RecordBatch, rows [][]byte, libBytes bool) {
	t.Helper()
	avroStats.Lock()
	defer avroStats.Unlock()
	schema, err := parseAvro(text)
	if err != nil {
		t.Fatalf("library rejects schema %s: %v", text, err)
	}
	for i, row := range rows {
		want := avroRecordWant(rec, i)
		got, err := decodeAvro(schema, row)
		if err != nil {
			t.Fatalf("row %d (% x): library cannot decode it: %v\nschema %s", i, row, err, text)
		}
		if !reflect.DeepEqual(got, any(want)) {
			t.Fatalf("row %d (% x):\n decodes to %#v\n       want %#v", i, row, got, want)
		}
		avroStats.decoded++
		if !libBytes || !avroLibCanonical(schema, want) {
			avroStats.notCanonical++
			continue
		}
		lib, err := avroLib.Marshal(schema, avroLibValue(schema, want))
		if err != nil {
			if hasAvroDecimal(schema) { // the library refuses values beyond the precision
				avroStats.libRefused++
				continue
			}
			t.Fatalf("row %d: library cannot encode %#v: %v", i, want, err)
		}
		if !bytes.Equal(lib, row) {
			// The library writes some negative decimals with a redundant
			// sign byte (-128 as ff 80), and one entry per duplicate map
			// key: equal values are fine there.
			text := schema.String()
			maybe := strings.Contains(text, `"decimal"`) || strings.Contains(text, `"map"`)
			if back, err := decodeAvro(schema, lib); err == nil && maybe && reflect.DeepEqual(back, any(want)) {
				avroStats.libLonger++
				continue
			}
			t.Errorf("row %d:\n     got % x\nlibrary % x", i, row, lib)
		}
		avroStats.sameBytes++
	}
}

// avroStats counts what avroCheckLibrary checked.
var avroStats struct {
	sync.Mutex
	decoded      int // rows the library decoded to the reference value
	sameBytes    int // of those, rows the library encoded to the same bytes
	notCanonical int // rows not compared: Go maps of 2+ entries, duplicate keys
	libRefused   int // rows the library refused (decimals beyond the precision)
	libLonger    int // rows the library wrote otherwise, with the same value: decimals with a redundant sign byte, maps without duplicate keys
}

// avroLibCanonical reports whether the library's encoding of v is unique:
// it writes Go maps in random order, so maps of two or more entries are not.
func avroLibCanonical(schema avro.Schema, v any) bool {
	switch s := schema.(type) {
	case *avro.RefSchema:
		return avroLibCanonical(s.Schema(), v)
	case *avro.UnionSchema:
		return v == nil || avroLibCanonical(s.Types()[1], v)
	case *avro.RecordSchema:
		for _, f := range s.Fields() {
			if !avroLibCanonical(f.Type(), v.(map[string]any)[f.Name()]) {
				return false
			}
		}
	case *avro.ArraySchema:
		for _, e := range v.([]any) {
			if !avroLibCanonical(s.Items(), e) {
				return false
			}
		}
	case *avro.MapSchema:
		m := v.(map[string]any)
		if len(m) > 1 {
			return false
		}
		for _, e := range m {
			return avroLibCanonical(s.Values(), e)
		}
	}
	return true
}

// hasAvroDecimal reports whether schema's text mentions a decimal.
func hasAvroDecimal(schema avro.Schema) bool {
	return strings.Contains(schema.String(), `"decimal"`)
}

// TestAvroAppendRowDoesNotAllocate checks the steady state of every case:
// once bound, appending rows into a buffer with room allocates nothing.
func TestAvroAppendRowDoesNotAllocate(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation may allocate")
	}
	for _, tc := range allAvroCases() {
		t.Run(tc.name, func(t *testing.T) {
			mem := checkedMem(t)
			arr := tc.build(mem)
			defer arr.Release()
			// Column a is nullable, b is not (its nulls are written as zeros).
			schema := arrow.NewSchema([]arrow.Field{{Name: "a", Type: arr.DataType(), Nullable: true}, {Name: "b", Type: arr.DataType()}}, nil)
			rec2 := array.NewRecordBatch(schema, []arrow.Array{arr, arr}, int64(arr.Len()))
			defer rec2.Release()
			enc, err := NewAvro(rec2.Schema())
			if err != nil {
				t.Fatal(err)
			}
			if err := enc.Bind(rec2); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 0, 1<<16)
			allocs := testing.AllocsPerRun(50, func() {
				for i := range int(rec2.NumRows()) {
					buf = enc.AppendRow(buf[:0], i)
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per batch, want 0", allocs)
			}
		})
	}
}
