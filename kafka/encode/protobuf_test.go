package encode

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"
)

// pbDecode decodes every row of rec, encoded by a fresh Protobuf encoder,
// with dynamicpb and returns each as protojson's JSON (proto field names),
// parsed into Go values for comparison.
func pbDecode(t *testing.T, rec arrow.RecordBatch) (*Protobuf, []any) {
	t.Helper()
	enc, err := NewProtobuf(rec.Schema(), "flightsink", "Row")
	if err != nil {
		t.Fatalf("NewProtobuf: %v", err)
	}
	if err := enc.Bind(rec); err != nil {
		t.Fatalf("Bind: %v", err)
	}
	var out []any
	var buf []byte
	for i := range int(rec.NumRows()) {
		buf = enc.AppendRow(buf[:0], i)
		msg := dynamicpb.NewMessage(enc.Descriptor())
		if err := proto.Unmarshal(buf, msg); err != nil {
			t.Fatalf("row %d: dynamicpb cannot read % x: %v", i, buf, err)
		}
		js, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(msg)
		if err != nil {
			t.Fatalf("row %d: protojson: %v", i, err)
		}
		var v any
		if err := json.Unmarshal(js, &v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return enc, out
}

// pbWant parses expected rows written as JSON.
func pbWant(t *testing.T, rows ...string) []any {
	t.Helper()
	out := make([]any, len(rows))
	for i, r := range rows {
		if err := json.Unmarshal([]byte(r), &out[i]); err != nil {
			t.Fatalf("want row %d: %v", i, err)
		}
	}
	return out
}

func TestProtobufRoundTrip(t *testing.T) {
	mem := checkedMem(t)
	i64 := arrow.PrimitiveTypes.Int64
	str := arrow.BinaryTypes.String
	point := arrow.StructOf(arrow.Field{Name: "x", Type: arrow.PrimitiveTypes.Int32}, arrow.Field{Name: "y", Type: str, Nullable: true})
	cols := []struct {
		name     string
		dt       arrow.DataType
		nullable bool
		js       string
	}{
		{"id", i64, false, `[1, 0, -1]`},
		{"n", arrow.PrimitiveTypes.Int32, true, `[7, 0, null]`},
		{"small", arrow.PrimitiveTypes.Int8, false, `[-128, 0, 127]`},
		{"u", arrow.PrimitiveTypes.Uint64, true, `[18446744073709551615, 0, null]`},
		{"ok", arrow.FixedWidthTypes.Boolean, true, `[true, false, null]`},
		{"f", arrow.PrimitiveTypes.Float32, false, `[1.5, 0, -0.25]`},
		{"d", arrow.PrimitiveTypes.Float64, true, `[-2.5, 0, null]`},
		{"name", str, true, `["hé", "", null]`},
		{"raw", arrow.BinaryTypes.Binary, false, `["AP8=", "", null]`},
		{"fixed", &arrow.FixedSizeBinaryType{ByteWidth: 2}, true, `["AAE=", "//8=", null]`},
		{"price", &arrow.Decimal128Type{Precision: 10, Scale: 2}, true, `["12.30", "-0.05", null]`},
		{"day", arrow.FixedWidthTypes.Date32, false, `[20455, 0, -1]`},
		{"day64", arrow.FixedWidthTypes.Date64, false, `[1767323045678, 0, -1]`},
		{"tod", arrow.FixedWidthTypes.Time64ns, true, `[11045000000001, 0, null]`},
		{"at", &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}, true, `[1767323045678, 0, -1]`},
		{"ns", &arrow.TimestampType{Unit: arrow.Nanosecond}, false, `[1767323045678901234, 1, null]`},
		{"took", &arrow.DurationType{Unit: arrow.Millisecond}, true, `[1500, -1500, null]`},
		{"tags", arrow.ListOf(str), true, `[["a", null, "b"], [], null]`},
		{"nums", arrow.ListOf(i64), true, `[[1, null, -1], [], null]`},
		{"floats", arrow.FixedSizeListOf(2, arrow.PrimitiveTypes.Float64), true, `[[1.5, null], [0, 2], null]`},
		{"matrix", arrow.ListOf(arrow.ListOf(i64)), true, `[[[1, 2], null, []], [], null]`},
		{"pt", point, true, `[{"x": 1, "y": "p"}, {"x": 0, "y": null}, null]`},
		{"pts", arrow.ListOf(point), false, `[[{"x": 2, "y": "q"}, null], [], null]`},
		{"attrs", arrow.MapOf(str, i64), true, `[[{"key": "k", "value": 1}, {"key": "z", "value": null}], [], null]`},
		{"by_id", arrow.MapOf(arrow.PrimitiveTypes.Int32, str), true, `[[{"key": -1, "value": "neg"}], null, []]`},
		{"at_map", arrow.MapOf(&arrow.TimestampType{Unit: arrow.Second}, str), true, `[[{"key": 1, "value": "one"}], [], null]`},
		{"lists_by_key", arrow.MapOf(str, arrow.ListOf(i64)), true, `[[{"key": "a", "value": [1, 2]}, {"key": "b", "value": null}], [], null]`},
		{"nothing", arrow.Null, true, `[null, null, null]`},
	}
	fields := make([]arrow.Field, len(cols))
	arrs := make([]arrow.Array, len(cols))
	for i, c := range cols {
		fields[i] = arrow.Field{Name: c.name, Type: c.dt, Nullable: c.nullable}
		arrs[i] = arrayFromJSON(t, mem, c.dt, c.js)
		defer arrs[i].Release()
	}
	rec := array.NewRecordBatch(arrow.NewSchema(fields, nil), arrs, 3)
	defer rec.Release()
	_, got := pbDecode(t, rec)
	want := pbWant(t,
		`{"id":"1","n":7,"small":-128,"u":"18446744073709551615","ok":true,"f":1.5,"d":-2.5,"name":"hé","raw":"AP8=",
		  "fixed":"AAE=","price":"12.30","day":20455,"day64":20455,"tod":"11045000000001","at":"2026-01-02T03:04:05.678Z",
		  "ns":"2026-01-02T03:04:05.678901234Z","took":"1.500s","tags":["a","","b"],"nums":["1","0","-1"],"floats":[1.5,0],
		  "matrix":[{"value":["1","2"]},{},{}],"pt":{"x":1,"y":"p"},"pts":[{"x":2,"y":"q"},{}],
		  "attrs":{"k":"1","z":"0"},"by_id":{"-1":"neg"},"at_map":[{"key":"1970-01-01T00:00:01Z","value":"one"}],
		  "lists_by_key":{"a":{"value":["1","2"]},"b":{}}}`,
		// zeros: implicit presence leaves them out, optional keeps them
		`{"n":0,"u":"0","ok":false,"d":0,"name":"","fixed":"//8=","price":"-0.05","tod":"0",
		  "at":"1970-01-01T00:00:00Z","ns":"1970-01-01T00:00:00.000000001Z","took":"-1.500s","floats":[0,2],"pt":{"y":null}}`,
		`{"id":"-1","small":127,"f":-0.25,"day":-1,"day64":-1,"at":"1969-12-31T23:59:59.999Z"}`,
	)
	// protojson writes an explicitly absent optional as missing: fix the want
	delete(want[1].(map[string]any)["pt"].(map[string]any), "y")
	for i := range got {
		if !reflect.DeepEqual(got[i], want[i]) {
			g, _ := json.Marshal(got[i])
			w, _ := json.Marshal(want[i])
			t.Errorf("row %d:\n got %s\nwant %s", i, g, w)
		}
	}
}

// TestProtobufSchemaText pins the .proto text of a schema that has each
// kind of field.
func TestProtobufSchemaText(t *testing.T) {
	str := arrow.BinaryTypes.String
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "name", Type: str, Nullable: true},
		{Name: "at", Type: arrow.FixedWidthTypes.Timestamp_ms, Nullable: true},
		{Name: "price", Type: &arrow.Decimal128Type{Precision: 10, Scale: 2}},
		{Name: "day", Type: arrow.FixedWidthTypes.Date32},
		{Name: "tags", Type: arrow.ListOf(str), Nullable: true},
		{Name: "ship_to", Type: arrow.StructOf(arrow.Field{Name: "city", Type: str, Nullable: true},
			arrow.Field{Name: "geo", Type: arrow.ListOf(arrow.ListOf(arrow.PrimitiveTypes.Float64))}), Nullable: true},
		{Name: "attrs", Type: arrow.MapOf(str, arrow.PrimitiveTypes.Int32)},
		{Name: "by_day", Type: arrow.MapOf(arrow.FixedWidthTypes.Date32, arrow.StructOf(arrow.Field{Name: "n", Type: arrow.PrimitiveTypes.Int32}))},
		{Name: "ShipTo", Type: arrow.FixedWidthTypes.Duration_s},
	}, nil)
	enc, err := NewProtobuf(schema, "flightsink", "orders")
	if err != nil {
		t.Fatal(err)
	}
	want := `syntax = "proto3";

package flightsink;

import "google/protobuf/duration.proto";
import "google/protobuf/timestamp.proto";

message orders {
  int64 id = 1;
  optional string name = 2;
  .google.protobuf.Timestamp at = 3;
  string price = 4; // decimal(10, 2) as text
  int32 day = 5; // days since 1970-01-01
  repeated string tags = 6;
  ShipTo_ ship_to = 7;
  map<string, int32> attrs = 8;
  repeated ByDayEntry by_day = 9;
  .google.protobuf.Duration ShipTo = 10;

  message ShipTo_ {
    optional string city = 1;
    repeated GeoItem geo = 2;

    message GeoItem {
      repeated double value = 1;
    }
  }

  message ByDayValue {
    int32 n = 1;
  }

  message ByDayEntry {
    int32 key = 1; // days since 1970-01-01
    ByDayValue value = 2;
  }
}
`
	if got := enc.Schema(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestProtobufRefusesSchemas(t *testing.T) {
	i64 := arrow.PrimitiveTypes.Int64
	for _, tc := range []struct {
		name   string
		fields []arrow.Field
		field  string
		reason string
	}{
		{"bad name", []arrow.Field{{Name: "order-id", Type: i64}}, "order-id", "invalid protobuf field name"},
		{"duplicate", []arrow.Field{{Name: "a", Type: i64}, {Name: "a", Type: i64}}, "a", "duplicate field name"},
		{"json name", []arrow.Field{{Name: "a_b", Type: i64}, {Name: "aB", Type: i64}}, "aB", `JSON name "aB"`},
		{"nested bad name", []arrow.Field{{Name: "s", Type: arrow.StructOf(arrow.Field{Name: "1x", Type: i64})}}, "s.1x", "invalid protobuf field name"},
		{"union", []arrow.Field{{Name: "u", Type: arrow.SparseUnionOf([]arrow.Field{{Name: "i", Type: i64}}, []arrow.UnionTypeCode{0})}}, "u", "unsupported type union"},
		{"interval in list", []arrow.Field{{Name: "l", Type: arrow.ListOf(arrow.FixedWidthTypes.MonthInterval)}}, "l.item", "unsupported type interval"},
		{"entry name taken", []arrow.Field{{Name: "AEntry", Type: i64}, {Name: "a", Type: arrow.MapOf(arrow.BinaryTypes.String, i64)}}, "a", `map entry message "AEntry"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewProtobuf(arrow.NewSchema(tc.fields, nil), "flightsink", "Row")
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(fe.Reason, tc.reason) {
				t.Fatalf("got %v, want a FieldError for %q saying %q", err, tc.field, tc.reason)
			}
		})
	}
	if _, err := NewProtobuf(arrow.NewSchema(nil, nil), "flightsink", "a-b"); err == nil {
		t.Error("message name a-b accepted")
	}
}

// TestProtobufEveryCase encodes every JSON test case's column (the types
// the other encoders support) and checks that dynamicpb reads each row
// and, where no map order or NaN gets in the way, that the bytes are what
// protobuf's own deterministic encoder writes for the decoded message:
// the canonical encoding (packed numbers, no zero values, fields in
// order).
func TestProtobufEveryCase(t *testing.T) {
	for _, tc := range slices.Concat(scalarCases(), nestedCases()) {
		t.Run(tc.name, func(t *testing.T) {
			mem := checkedMem(t)
			arr := tc.build(mem)
			defer arr.Release()
			rec := recordOf(t, []arrow.Array{arr}, "v")
			defer rec.Release()
			enc, err := NewProtobuf(rec.Schema(), "flightsink", "Row")
			if err != nil {
				// the escaped-names case: refused, as it must be
				if !strings.Contains(tc.name, "escaped names") {
					t.Fatal(err)
				}
				return
			}
			if err := enc.Bind(rec); err != nil {
				t.Fatal(err)
			}
			for i := range int(rec.NumRows()) {
				got := enc.AppendRow(nil, i)
				msg := dynamicpb.NewMessage(enc.Descriptor())
				if err := proto.Unmarshal(got, msg); err != nil {
					t.Fatalf("row %d: % x: %v", i, got, err)
				}
				if strings.Contains(tc.name, "map") {
					continue
				}
				want, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("row %d: got % x, protobuf writes % x", i, got, want)
				}
			}
		})
	}
}

// TestProtobufLongValues crosses the one-byte length of nested messages,
// packed lists and replaced strings, where the encoder moves what it
// wrote to make room for a longer length.
func TestProtobufLongValues(t *testing.T) {
	mem := checkedMem(t)
	long := strings.Repeat("x", 200)
	bad := strings.Repeat("\xff", 100) // each byte becomes U+FFFD: 300 bytes
	s := arrow.StructOf(arrow.Field{Name: "text", Type: arrow.BinaryTypes.String, Nullable: true},
		arrow.Field{Name: "nums", Type: arrow.ListOf(arrow.PrimitiveTypes.Int64)})
	b := array.NewStructBuilder(mem, s)
	defer b.Release()
	text := b.FieldBuilder(0).(*array.StringBuilder)
	nums := b.FieldBuilder(1).(*array.ListBuilder)
	numVals := nums.ValueBuilder().(*array.Int64Builder)
	for _, v := range []string{long, bad, "short"} {
		b.Append(true)
		text.Append(v)
		nums.Append(true)
		for k := range 100 {
			numVals.Append(int64(k) * 1000)
		}
	}
	arr := b.NewArray()
	defer arr.Release()
	rec := recordOf(t, []arrow.Array{arr}, "s")
	defer rec.Release()
	_, got := pbDecode(t, rec)
	for i, text := range []string{long, strings.Repeat("\uFFFD", 100), "short"} {
		row := got[i].(map[string]any)["s"].(map[string]any)
		if row["text"] != text {
			t.Errorf("row %d text = %q", i, row["text"])
		}
		if n := row["nums"].([]any); len(n) != 100 || n[99] != "99000" || n[1] != "1000" {
			t.Errorf("row %d nums = %v", i, n)
		}
	}
}

// TestProtobufDictionaryAndRunEnd checks dictionary-encoded values, cached
// (dictionary no longer than the batch) or not, and run-end encoded ones,
// with nulls in indices, entries and runs, and sliced arrays.
func TestProtobufDictionaryAndRunEnd(t *testing.T) {
	mem := checkedMem(t)
	dict := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}
	ree := arrow.RunEndEncodedOf(arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Int64)
	db := array.NewDictionaryBuilder(mem, dict).(*array.BinaryDictionaryBuilder)
	defer db.Release()
	for _, v := range []string{"a", "", "a", "b"} {
		_ = db.AppendString(v)
	}
	db.AppendNull()
	d := db.NewArray()
	defer d.Release()
	r := arrayFromJSON(t, mem, ree, `[5, 5, null, 0, 7]`)
	defer r.Release()
	short := array.NewSlice(d, 1, 5) // a dictionary longer than the batch: no cache
	defer short.Release()
	rshort := array.NewSlice(r, 1, 5)
	defer rshort.Release()
	for _, tc := range []struct {
		name string
		cols []arrow.Array
		want []string
	}{
		{"whole", []arrow.Array{d, r}, []string{`{"d":"a","r":"5"}`, `{"d":"","r":"5"}`, `{"d":"a"}`, `{"d":"b","r":"0"}`, `{"r":"7"}`}},
		{"sliced", []arrow.Array{short, rshort}, []string{`{"d":"","r":"5"}`, `{"d":"a"}`, `{"d":"b","r":"0"}`, `{"r":"7"}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := recordOf(t, tc.cols, "d", "r")
			defer rec.Release()
			_, got := pbDecode(t, rec)
			if want := pbWant(t, tc.want...); !reflect.DeepEqual(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

func TestProtobufDoesNotAllocate(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation may allocate")
	}
	for _, tc := range slices.Concat(scalarCases(), nestedCases()) {
		t.Run(tc.name, func(t *testing.T) {
			mem := checkedMem(t)
			arr := tc.build(mem)
			defer arr.Release()
			rec := recordOf(t, []arrow.Array{arr}, "v")
			defer rec.Release()
			enc, err := NewProtobuf(rec.Schema(), "p", "Row")
			if err != nil {
				return // refused (checked in TestProtobufEveryCase)
			}
			if err := enc.Bind(rec); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 0, 1<<16)
			allocs := testing.AllocsPerRun(50, func() {
				for i := range int(rec.NumRows()) {
					buf = enc.AppendRow(buf[:0], i)
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per batch, want 0", allocs)
			}
		})
	}
}

// TestProtobufDecimals checks the decimal text, negative scales and
// decimal256 included.
func TestProtobufDecimals(t *testing.T) {
	mem := checkedMem(t)
	b := array.NewDecimal128Builder(mem, &arrow.Decimal128Type{Precision: 10, Scale: -2})
	defer b.Release()
	b.Append(decimal128.FromI64(12))
	b.Append(decimal128.FromI64(0))
	arr := b.NewArray()
	defer arr.Release()
	big := arrayFromJSON(t, mem, &arrow.Decimal256Type{Precision: 76, Scale: 4}, `["-123456789012345678901234567890.1234", "0.0005"]`)
	defer big.Release()
	rec := recordOf(t, []arrow.Array{arr, big}, "neg", "big")
	defer rec.Release()
	_, got := pbDecode(t, rec)
	want := pbWant(t, `{"neg":"1200","big":"-123456789012345678901234567890.1234"}`, `{"neg":"0","big":"0.0005"}`)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
