package encode

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/float16"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// valueCase is one column type with exact expected JSON for each element.
type valueCase struct {
	name  string
	build func(mem memory.Allocator) arrow.Array
	want  []string
}

// fromJSON returns a build function for arrow-go's JSON form of an array.
func fromJSON(dt arrow.DataType, js string) func(memory.Allocator) arrow.Array {
	return func(mem memory.Allocator) arrow.Array {
		arr, _, err := array.FromJSON(mem, dt, strings.NewReader(js))
		if err != nil {
			panic(err)
		}
		return arr
	}
}

func scalarCases() []valueCase {
	ts := func(u arrow.TimeUnit, tz string) arrow.DataType { return &arrow.TimestampType{Unit: u, TimeZone: tz} }
	return []valueCase{
		{"null", fromJSON(arrow.Null, `[null, null]`), []string{`null`, `null`}},
		{"bool", fromJSON(arrow.FixedWidthTypes.Boolean, `[true, false, null, true, false, false, true, true, false, true]`),
			[]string{`true`, `false`, `null`, `true`, `false`, `false`, `true`, `true`, `false`, `true`}},
		{"int8", fromJSON(arrow.PrimitiveTypes.Int8, `[-128, 127, null, 0]`), []string{`-128`, `127`, `null`, `0`}},
		{"int16", fromJSON(arrow.PrimitiveTypes.Int16, `[-32768, 32767, null]`), []string{`-32768`, `32767`, `null`}},
		{"int32", fromJSON(arrow.PrimitiveTypes.Int32, `[-2147483648, 2147483647, null]`), []string{`-2147483648`, `2147483647`, `null`}},
		{"int64", fromJSON(arrow.PrimitiveTypes.Int64, `[-9223372036854775808, 9223372036854775807, null]`),
			[]string{`-9223372036854775808`, `9223372036854775807`, `null`}},
		{"uint8", fromJSON(arrow.PrimitiveTypes.Uint8, `[0, 255, null]`), []string{`0`, `255`, `null`}},
		{"uint16", fromJSON(arrow.PrimitiveTypes.Uint16, `[0, 65535, null]`), []string{`0`, `65535`, `null`}},
		{"uint32", fromJSON(arrow.PrimitiveTypes.Uint32, `[0, 4294967295, null]`), []string{`0`, `4294967295`, `null`}},
		{"uint64", uint64Array, []string{`0`, `18446744073709551615`, `null`}},
		{"float16", func(mem memory.Allocator) arrow.Array {
			b := array.NewFloat16Builder(mem)
			defer b.Release()
			for _, f := range []float32{1.5, -0.5, 65504, 0.1, float32(math.Inf(1)), float32(math.NaN())} {
				b.Append(float16.New(f))
			}
			b.AppendNull()
			return b.NewArray()
		}, []string{`1.5`, `-0.5`, `65504`, `0.099975586`, `null`, `null`, `null`}},
		{"float32", func(mem memory.Allocator) arrow.Array {
			b := array.NewFloat32Builder(mem)
			defer b.Release()
			b.AppendValues([]float32{0.1, 1e21, 1e20, 1e-6, 1e-7, 3.4028235e38, float32(math.Copysign(0, -1)), 16777216, 1.17549435e-38,
				float32(math.NaN()), float32(math.Inf(-1))}, nil)
			b.AppendNull()
			return b.NewArray()
		}, []string{`0.1`, `1e+21`, `100000000000000000000`, `0.000001`, `1e-7`, `3.4028235e+38`, `-0`, `16777216`, `1.1754944e-38`,
			`null`, `null`, `null`}},
		{"float64", func(mem memory.Allocator) arrow.Array {
			b := array.NewFloat64Builder(mem)
			defer b.Release()
			b.AppendValues([]float64{0.1, 1e21, 1e20, 1e-6, 1e-7, 123456.789, 5e-324, math.MaxFloat64, -2.5e-10, 0,
				math.NaN(), math.Inf(1)}, nil)
			b.AppendNull()
			return b.NewArray()
		}, []string{`0.1`, `1e+21`, `100000000000000000000`, `0.000001`, `1e-7`, `123456.789`, `5e-324`, `1.7976931348623157e+308`, `-2.5e-10`, `0`,
			`null`, `null`, `null`}},
		{"decimal32", fromJSON(&arrow.Decimal32Type{Precision: 9, Scale: 2}, `["12.30", "-0.05", "0", "-9999999.99", null]`),
			[]string{`"12.30"`, `"-0.05"`, `"0.00"`, `"-9999999.99"`, `null`}},
		{"decimal64", fromJSON(&arrow.Decimal64Type{Precision: 18, Scale: 0}, `["100", "-7", "0", "999999999999999999", null]`),
			[]string{`"100"`, `"-7"`, `"0"`, `"999999999999999999"`, `null`}},
		{"decimal64 scale 18", fromJSON(&arrow.Decimal64Type{Precision: 18, Scale: 18}, `["0.000000000000000001", "-0.5"]`),
			[]string{`"0.000000000000000001"`, `"-0.500000000000000000"`}},
		{"decimal128", fromJSON(&arrow.Decimal128Type{Precision: 38, Scale: 2}, `["12.30", "-0.05", "100", "0", null,
			"92233720368547758.07", "92233720368547758.08", "-92233720368547758.08", "-92233720368547758.09",
			"123456789012345678901234567890123456.78", "-999999999999999999999999999999999999.99"]`),
			[]string{`"12.30"`, `"-0.05"`, `"100.00"`, `"0.00"`, `null`,
				`"92233720368547758.07"`, `"92233720368547758.08"`, `"-92233720368547758.08"`, `"-92233720368547758.09"`,
				`"123456789012345678901234567890123456.78"`, `"-999999999999999999999999999999999999.99"`}},
		{"decimal128 scale 0", fromJSON(&arrow.Decimal128Type{Precision: 38, Scale: 0}, `["99999999999999999999999999999999999999", "-1", "18446744073709551616"]`),
			[]string{`"99999999999999999999999999999999999999"`, `"-1"`, `"18446744073709551616"`}},
		{"decimal128 scale 38", fromJSON(&arrow.Decimal128Type{Precision: 38, Scale: 38}, `["0.12345678901234567890123456789012345678", "-0.00000000000000000000000000000000000001"]`),
			[]string{`"0.12345678901234567890123456789012345678"`, `"-0.00000000000000000000000000000000000001"`}},
		{"decimal128 negative scale", fromJSON(&arrow.Decimal128Type{Precision: 10, Scale: -2}, `["1200", "-500", "0", "99999999900"]`),
			[]string{`"1200"`, `"-500"`, `"0"`, `"99999999900"`}},
		{"decimal256", fromJSON(&arrow.Decimal256Type{Precision: 76, Scale: 4}, `["12.3000", "-0.0005",
			"999999999999999999999999999999999999999999999999999999999999999999999999.9999",
			"-999999999999999999999999999999999999999999999999999999999999999999999999.9999",
			"1844674407370955.1616", null]`),
			[]string{`"12.3000"`, `"-0.0005"`,
				`"999999999999999999999999999999999999999999999999999999999999999999999999.9999"`,
				`"-999999999999999999999999999999999999999999999999999999999999999999999999.9999"`,
				`"1844674407370955.1616"`, `null`}},
		{"decimal256 negative scale", fromJSON(&arrow.Decimal256Type{Precision: 40, Scale: -3}, `["5000", "-123000"]`),
			[]string{`"5000"`, `"-123000"`}},
		{"utf8", stringsOf(arrow.BinaryTypes.String), stringsWant},
		{"large_utf8", stringsOf(arrow.BinaryTypes.LargeString), stringsWant},
		{"string_view", stringsOf(arrow.BinaryTypes.StringView), stringsWant},
		{"binary", binariesOf(arrow.BinaryTypes.Binary), binariesWant},
		{"large_binary", binariesOf(arrow.BinaryTypes.LargeBinary), binariesWant},
		{"binary_view", binariesOf(arrow.BinaryTypes.BinaryView), binariesWant},
		{"fixed_size_binary", func(mem memory.Allocator) arrow.Array {
			b := array.NewFixedSizeBinaryBuilder(mem, &arrow.FixedSizeBinaryType{ByteWidth: 3})
			defer b.Release()
			b.AppendValues([][]byte{{0, 1, 2}, {0xff, 0xfe, 0xfd}}, nil)
			b.AppendNull()
			b.Append([]byte("abc"))
			return b.NewArray()
		}, []string{`"AAEC"`, `"//79"`, `null`, `"YWJj"`}},
		{"date32", fromJSON(arrow.FixedWidthTypes.Date32, `[0, -1, 20455, 11016, -719528, 2932896, null]`),
			[]string{`"1970-01-01"`, `"1969-12-31"`, `"2026-01-02"`, `"2000-02-29"`, `"0000-01-01"`, `"9999-12-31"`, `null`}},
		{"date32 outside 0000-9999", fromJSON(arrow.FixedWidthTypes.Date32, `[2932897, -719529]`),
			[]string{`"10000-01-01"`, `"-0001-12-31"`}},
		{"date64", fromJSON(arrow.FixedWidthTypes.Date64, `[0, 86400000, -1, -86400000, 1767225600000, null]`),
			[]string{`"1970-01-01"`, `"1970-01-02"`, `"1969-12-31"`, `"1969-12-31"`, `"2026-01-01"`, `null`}},
		{"time32[s]", fromJSON(arrow.FixedWidthTypes.Time32s, `[0, 11045, 86399, null]`),
			[]string{`"00:00:00"`, `"03:04:05"`, `"23:59:59"`, `null`}},
		{"time32[ms]", fromJSON(arrow.FixedWidthTypes.Time32ms, `[0, 11045678, 86399999, 11045008, null]`),
			[]string{`"00:00:00.000"`, `"03:04:05.678"`, `"23:59:59.999"`, `"03:04:05.008"`, `null`}},
		{"time64[us]", fromJSON(arrow.FixedWidthTypes.Time64us, `[0, 11045678901, 86399999999, 11045000001, null]`),
			[]string{`"00:00:00.000000"`, `"03:04:05.678901"`, `"23:59:59.999999"`, `"03:04:05.000001"`, `null`}},
		{"time64[ns]", fromJSON(arrow.FixedWidthTypes.Time64ns, `[0, 11045678901234, 86399999999999, 11045000000001, null]`),
			[]string{`"00:00:00.000000000"`, `"03:04:05.678901234"`, `"23:59:59.999999999"`, `"03:04:05.000000001"`, `null`}},
		{"timestamp[s]", fromJSON(ts(arrow.Second, ""), `[1767323045, 0, -1, null, -62167219200, 253402300799]`),
			[]string{`"2026-01-02T03:04:05Z"`, `"1970-01-01T00:00:00Z"`, `"1969-12-31T23:59:59Z"`, `null`,
				`"0000-01-01T00:00:00Z"`, `"9999-12-31T23:59:59Z"`}},
		{"timestamp[s] outside 0000-9999", fromJSON(ts(arrow.Second, ""), `[253402300800, -62167219201]`),
			[]string{`"10000-01-01T00:00:00Z"`, `"-0001-12-31T23:59:59Z"`}},
		{"timestamp[ms]", fromJSON(ts(arrow.Millisecond, ""), `[1767323045678, 0, -1, 951782400000, null]`),
			[]string{`"2026-01-02T03:04:05.678Z"`, `"1970-01-01T00:00:00.000Z"`, `"1969-12-31T23:59:59.999Z"`, `"2000-02-29T00:00:00.000Z"`, `null`}},
		{"timestamp[ms] outside 0000-9999", fromJSON(ts(arrow.Millisecond, ""), `[253402300800001]`),
			[]string{`"10000-01-01T00:00:00.001Z"`}},
		{"timestamp[us]", fromJSON(ts(arrow.Microsecond, ""), `[1767323045678901, -1, -1000001, null]`),
			[]string{`"2026-01-02T03:04:05.678901Z"`, `"1969-12-31T23:59:59.999999Z"`, `"1969-12-31T23:59:58.999999Z"`, `null`}},
		{"timestamp[ns]", fromJSON(ts(arrow.Nanosecond, ""), `[1767323045678901234, -1, -9223372036854775808, 9223372036854775807, null]`),
			[]string{`"2026-01-02T03:04:05.678901234Z"`, `"1969-12-31T23:59:59.999999999Z"`, `"1677-09-21T00:12:43.145224192Z"`, `"2262-04-11T23:47:16.854775807Z"`, `null`}},
		{"timestamp[ms, America/New_York]", fromJSON(ts(arrow.Millisecond, "America/New_York"), `[1767323045678, null]`),
			[]string{`"2026-01-02T03:04:05.678Z"`, `null`}},
		{"timestamp[us, +05:30]", fromJSON(ts(arrow.Microsecond, "+05:30"), `[1767323045678901]`),
			[]string{`"2026-01-02T03:04:05.678901Z"`}},
		{"duration[s]", fromJSON(arrow.FixedWidthTypes.Duration_s, `[-5, 0, 86400, null]`), []string{`-5`, `0`, `86400`, `null`}},
		{"duration[ms]", fromJSON(arrow.FixedWidthTypes.Duration_ms, `[1500, null]`), []string{`1500`, `null`}},
		{"duration[us]", fromJSON(arrow.FixedWidthTypes.Duration_us, `[-9223372036854775808]`), []string{`-9223372036854775808`}},
		{"duration[ns]", fromJSON(arrow.FixedWidthTypes.Duration_ns, `[9223372036854775807]`), []string{`9223372036854775807`}},
	}
}

// uint64Array holds 0, MaxUint64 and null, which arrow-go's JSON reader
// cannot parse.
func uint64Array(mem memory.Allocator) arrow.Array {
	b := array.NewUint64Builder(mem)
	defer b.Release()
	b.AppendValues([]uint64{0, math.MaxUint64}, nil)
	b.AppendNull()
	return b.NewArray()
}

var stringsWant = []string{
	`"hello"`, `""`, `null`, `"a\"b\\c/d"`, `"\n\r\t\b\f"`, `"\u0000\u0001\u001f` + "\x7f" + `"`,
	`"<a href='x'>&amp;</a>"`, `"\u2028 \u2029"`, `"日本語 ✓ 😀"`, `"bad \ufffd\ufffd utf8 \ufffd\ufffd"`,
	`"a long string that is not inlined in a view header"`, `"tab\tinside a long string past eight bytes\"quote"`,
}

// stringsOf builds the strings behind stringsWant as an array of type dt.
func stringsOf(dt arrow.DataType) func(memory.Allocator) arrow.Array {
	return func(mem memory.Allocator) arrow.Array {
		b := array.NewBuilder(mem, dt)
		defer b.Release()
		type stringAppender interface{ Append(string) }
		app := b.(stringAppender)
		app.Append("hello")
		app.Append("")
		b.AppendNull()
		for _, s := range []string{"a\"b\\c/d", "\n\r\t\b\f", "\x00\x01\x1f\x7f", "<a href='x'>&amp;</a>",
			"\u2028 \u2029", "日本語 ✓ 😀", "bad \xff\xfe utf8 \xe6\x97",
			"a long string that is not inlined in a view header", "tab\tinside a long string past eight bytes\"quote"} {
			app.Append(s)
		}
		return b.NewArray()
	}
}

var binariesWant = []string{`"AAEC"`, `""`, `null`, `"aGVsbG8gd29ybGQsIHRoaXMgaXMgbG9uZw=="`, `"/w=="`}

func binariesOf(dt arrow.DataType) func(memory.Allocator) arrow.Array {
	return func(mem memory.Allocator) arrow.Array {
		b := array.NewBuilder(mem, dt)
		defer b.Release()
		type binaryAppender interface{ Append([]byte) }
		app := b.(binaryAppender)
		app.Append([]byte{0, 1, 2})
		app.Append([]byte{})
		b.AppendNull()
		app.Append([]byte("hello world, this is long"))
		app.Append([]byte{0xff})
		return b.NewArray()
	}
}

func nestedCases() []valueCase {
	i64 := arrow.PrimitiveTypes.Int64
	str := arrow.BinaryTypes.String
	point := arrow.StructOf(arrow.Field{Name: "a", Type: i64, Nullable: true}, arrow.Field{Name: "b", Type: str, Nullable: true})
	dictStr := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: str}
	return []valueCase{
		{"list", fromJSON(arrow.ListOf(i64), `[[1, 2], [], null, [null, 3]]`), []string{`[1,2]`, `[]`, `null`, `[null,3]`}},
		{"large_list", fromJSON(arrow.LargeListOf(i64), `[[1, 2], [], null, [null, 3]]`), []string{`[1,2]`, `[]`, `null`, `[null,3]`}},
		{"fixed_size_list", fromJSON(arrow.FixedSizeListOf(2, i64), `[[1, 2], null, [null, 3]]`), []string{`[1,2]`, `null`, `[null,3]`}},
		{"list_view", fromJSON(arrow.ListViewOf(i64), `[[1, 2], [], null, [null, 3]]`), []string{`[1,2]`, `[]`, `null`, `[null,3]`}},
		{"large_list_view", fromJSON(arrow.LargeListViewOf(i64), `[[1, 2], [], null, [null, 3]]`), []string{`[1,2]`, `[]`, `null`, `[null,3]`}},
		{"list of strings", fromJSON(arrow.ListOf(str), `[["a", "b\"c"], [null], []]`), []string{`["a","b\"c"]`, `[null]`, `[]`}},
		{"list of lists", fromJSON(arrow.ListOf(arrow.ListOf(i64)), `[[[1], null, []], null, [[2, 3]]]`),
			[]string{`[[1],null,[]]`, `null`, `[[2,3]]`}},
		{"struct", fromJSON(point, `[{"a": 1, "b": "x"}, null, {"a": null, "b": null}, {"a": -2, "b": "y\n"}]`),
			[]string{`{"a":1,"b":"x"}`, `null`, `{"a":null,"b":null}`, `{"a":-2,"b":"y\n"}`}},
		{"empty struct", fromJSON(arrow.StructOf(), `[{}, null]`), []string{`{}`, `null`}},
		{"struct with escaped names", fromJSON(arrow.StructOf(arrow.Field{Name: "a\"b", Type: i64, Nullable: true}, arrow.Field{Name: "日\n", Type: i64, Nullable: true}),
			`[{"a\"b": 1, "日\n": 2}]`), []string{`{"a\"b":1,"日\n":2}`}},
		{"nested struct", fromJSON(arrow.StructOf(arrow.Field{Name: "p", Type: point, Nullable: true}, arrow.Field{Name: "l", Type: arrow.ListOf(point), Nullable: true}),
			`[{"p": {"a": 1, "b": "x"}, "l": [{"a": 2, "b": null}, null]}, {"p": null, "l": null}, null, {"p": {"a": null, "b": "z"}, "l": []}]`),
			[]string{`{"p":{"a":1,"b":"x"},"l":[{"a":2,"b":null},null]}`, `{"p":null,"l":null}`, `null`, `{"p":{"a":null,"b":"z"},"l":[]}`}},
		{"struct of list of struct", fromJSON(arrow.StructOf(arrow.Field{Name: "l", Type: arrow.ListOf(arrow.StructOf(arrow.Field{Name: "x", Type: arrow.ListOf(i64), Nullable: true})), Nullable: true}),
			`[{"l": [{"x": [1, null]}, {"x": null}, null]}]`),
			[]string{`{"l":[{"x":[1,null]},{"x":null},null]}`}},
		{"map utf8 keys", fromJSON(arrow.MapOf(str, i64), `[[{"key": "a", "value": 1}, {"key": "b\"", "value": null}], null, []]`),
			[]string{`{"a":1,"b\"":null}`, `null`, `{}`}},
		{"map large_utf8 keys", fromJSON(arrow.MapOf(arrow.BinaryTypes.LargeString, str), `[[{"key": "k", "value": "v"}]]`),
			[]string{`{"k":"v"}`}},
		{"map string_view keys", fromJSON(arrow.MapOf(arrow.BinaryTypes.StringView, i64), `[[{"key": "k", "value": 1}, {"key": "a key longer than twelve", "value": 2}]]`),
			[]string{`{"k":1,"a key longer than twelve":2}`}},
		{"map int keys", fromJSON(arrow.MapOf(arrow.PrimitiveTypes.Int32, str), `[[{"key": 1, "value": "x"}, {"key": 2, "value": null}], [], null]`),
			[]string{`[{"key":1,"value":"x"},{"key":2,"value":null}]`, `[]`, `null`}},
		{"map dictionary keys", fromJSON(arrow.MapOf(dictStr, i64), `[[{"key": "a", "value": 1}]]`),
			[]string{`[{"key":"a","value":1}]`}},
		{"map of struct values", fromJSON(arrow.MapOf(str, point), `[[{"key": "p", "value": {"a": 1, "b": null}}, {"key": "q", "value": null}]]`),
			[]string{`{"p":{"a":1,"b":null},"q":null}`}},
		{"dictionary utf8", fromJSON(dictStr, `["a", "b", "a", null, "c\"", "b"]`),
			[]string{`"a"`, `"b"`, `"a"`, `null`, `"c\""`, `"b"`}},
		{"dictionary int8 index", fromJSON(&arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: i64}, `[5, null, 5, 7]`),
			[]string{`5`, `null`, `5`, `7`}},
		{"dictionary uint64 index", fromJSON(&arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Uint64, ValueType: str}, `["x", "y", null]`),
			[]string{`"x"`, `"y"`, `null`}},
		{"dictionary timestamp", fromJSON(&arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int16, ValueType: &arrow.TimestampType{Unit: arrow.Millisecond}}, `[0, 1767323045678, 0]`),
			[]string{`"1970-01-01T00:00:00.000Z"`, `"2026-01-02T03:04:05.678Z"`, `"1970-01-01T00:00:00.000Z"`}},
		{"dictionary of struct", func(mem memory.Allocator) arrow.Array {
			dict := fromJSON(point, `[{"a": 1, "b": "x"}, null]`)(mem)
			defer dict.Release()
			idx := fromJSON(arrow.PrimitiveTypes.Int32, `[0, 1, null, 0]`)(mem)
			defer idx.Release()
			return array.NewDictionaryArray(&arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: point}, idx, dict)
		}, []string{`{"a":1,"b":"x"}`, `null`, `null`, `{"a":1,"b":"x"}`}},
		{"dictionary larger than batch", func(mem memory.Allocator) arrow.Array {
			dict := fromJSON(str, `["a", "b", null, "d", "e", "f"]`)(mem)
			defer dict.Release()
			idx := fromJSON(arrow.PrimitiveTypes.Int32, `[5, 2, null]`)(mem)
			defer idx.Release()
			return array.NewDictionaryArray(dictStr, idx, dict)
		}, []string{`"f"`, `null`, `null`}},
		{"list of dictionary", fromJSON(arrow.ListOf(dictStr), `[["a", null, "b"], null, ["b"]]`),
			[]string{`["a",null,"b"]`, `null`, `["b"]`}},
		{"run_end_encoded int32", fromJSON(arrow.RunEndEncodedOf(arrow.PrimitiveTypes.Int32, str), `["a", "a", "b", null, null, "c", "c", "c"]`),
			[]string{`"a"`, `"a"`, `"b"`, `null`, `null`, `"c"`, `"c"`, `"c"`}},
		{"run_end_encoded int16", fromJSON(arrow.RunEndEncodedOf(arrow.PrimitiveTypes.Int16, i64), `[1, 1, 2, 2, 2, null]`),
			[]string{`1`, `1`, `2`, `2`, `2`, `null`}},
		{"run_end_encoded int64 of dictionary", fromJSON(arrow.RunEndEncodedOf(arrow.PrimitiveTypes.Int64, dictStr), `["x", "x", "y"]`),
			[]string{`"x"`, `"x"`, `"y"`}},
		{"list of run_end_encoded", func(mem memory.Allocator) arrow.Array {
			// Built by hand: arrow-go's JSON reader miscounts runs across lists.
			ends := fromJSON(arrow.PrimitiveTypes.Int32, `[2, 4, 5]`)(mem)
			defer ends.Release()
			vals := fromJSON(i64, `[1, 2, 3]`)(mem)
			defer vals.Release()
			ree := array.NewRunEndEncodedArray(ends, vals, 5, 0)
			defer ree.Release()
			offs := memory.NewBufferBytes(arrow.GetBytes([]int32{0, 3, 3, 5, 5}))
			valid := memory.NewBufferBytes([]byte{0b0111})
			data := array.NewData(arrow.ListOf(ree.DataType()), 4, []*memory.Buffer{valid, offs}, []arrow.ArrayData{ree.Data()}, 1, 0)
			defer data.Release()
			return array.NewListData(data)
		}, []string{`[1,1,2]`, `[]`, `[2,3]`, `null`}},
	}
}

func TestJSONValues(t *testing.T) {
	for _, tc := range slices.Concat(scalarCases(), nestedCases()) {
		t.Run(tc.name, func(t *testing.T) {
			mem := checkedMem(t)
			arr := tc.build(mem)
			defer arr.Release()
			got := encodeValues(t, arr)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("type %s\n got %q\nwant %q", arr.DataType(), got, tc.want)
			}
			for i, v := range got {
				if !json.Valid([]byte(v)) {
					t.Errorf("element %d: invalid JSON %s", i, v)
				}
			}
			// Every suffix and an inner window of the array (non-zero
			// offsets) must encode to the same values.
			for start := 1; start < arr.Len(); start++ {
				for _, end := range []int{arr.Len(), arr.Len() - 1} {
					if end <= start {
						continue
					}
					sl := array.NewSlice(arr, int64(start), int64(end))
					if got := encodeValues(t, sl); !slices.Equal(got, tc.want[start:end]) {
						t.Errorf("slice [%d:%d]\n got %q\nwant %q", start, end, got, tc.want[start:end])
					}
					sl.Release()
				}
			}
		})
	}
}

// TestJSONStructParentNull checks that a null struct hides child values
// that are present in the child arrays, at every level.
func TestJSONStructParentNull(t *testing.T) {
	mem := checkedMem(t)
	ids := arrayFromJSON(t, mem, arrow.PrimitiveTypes.Int64, `[1, 2, 3, 4]`)
	defer ids.Release()
	names := arrayFromJSON(t, mem, arrow.BinaryTypes.String, `["a", "b", null, "d"]`)
	defer names.Release()

	// inner: struct{id, name} with element 1 null (children still hold 2, "b").
	innerValid := memory.NewResizableBuffer(mem)
	defer innerValid.Release()
	innerValid.Resize(1)
	innerValid.Bytes()[0] = 0b1101
	inner, err := array.NewStructArrayWithNulls([]arrow.Array{ids, names}, []string{"id", "name"}, innerValid, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Release()

	// outer: struct{s: inner} with element 3 null (inner element 3 is valid).
	outerValid := memory.NewResizableBuffer(mem)
	defer outerValid.Release()
	outerValid.Resize(1)
	outerValid.Bytes()[0] = 0b0111
	outer, err := array.NewStructArrayWithNulls([]arrow.Array{inner}, []string{"s"}, outerValid, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer outer.Release()

	want := []string{`{"s":{"id":1,"name":"a"}}`, `{"s":null}`, `{"s":{"id":3,"name":null}}`, `null`}
	if got := encodeValues(t, outer); !slices.Equal(got, want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	sl := array.NewSlice(outer, 1, 4)
	defer sl.Release()
	if got := encodeValues(t, sl); !slices.Equal(got, want[1:]) {
		t.Fatalf("slice: got  %q\nwant %q", got, want[1:])
	}
}

// TestJSONRunEndEncodedSliced checks run-end-encoded arrays with a logical
// offset, read in order, backwards and at random.
func TestJSONRunEndEncodedSliced(t *testing.T) {
	mem := checkedMem(t)
	ends := arrayFromJSON(t, mem, arrow.PrimitiveTypes.Int32, `[2, 3, 6, 10]`)
	defer ends.Release()
	vals := arrayFromJSON(t, mem, arrow.BinaryTypes.String, `["a", null, "b", "c"]`)
	defer vals.Release()
	// Logical: a a null b b b c c c c; take the window [1, 9).
	ree := array.NewRunEndEncodedArray(ends, vals, 8, 1)
	defer ree.Release()
	want := []string{`"a"`, `null`, `"b"`, `"b"`, `"b"`, `"c"`, `"c"`, `"c"`}
	rec := recordOf(t, []arrow.Array{ree}, "v")
	defer rec.Release()
	enc := boundJSON(t, rec)
	for _, order := range [][]int{{0, 1, 2, 3, 4, 5, 6, 7}, {7, 6, 5, 4, 3, 2, 1, 0}, {3, 0, 7, 1, 5, 2, 6, 4}} {
		for _, i := range order {
			got := string(enc.AppendRow(nil, i))
			if w := `{"v":` + want[i] + `}`; got != w {
				t.Errorf("row %d = %s, want %s", i, got, w)
			}
		}
	}
}

func TestJSONRows(t *testing.T) {
	mem := checkedMem(t)
	id := arrayFromJSON(t, mem, arrow.PrimitiveTypes.Int64, `[1, null]`)
	defer id.Release()
	name := arrayFromJSON(t, mem, arrow.BinaryTypes.String, `["x", "y"]`)
	defer name.Release()
	odd := arrayFromJSON(t, mem, arrow.FixedWidthTypes.Boolean, `[true, null]`)
	defer odd.Release()

	rec := recordOf(t, []arrow.Array{id, name, odd}, "id", "name", "we\"ird\n<key>")
	defer rec.Release()
	want := []string{`{"id":1,"name":"x","we\"ird\n<key>":true}`, `{"id":null,"name":"y","we\"ird\n<key>":null}`}
	if got := encodeRows(t, rec); !slices.Equal(got, want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}

	empty := array.NewRecordBatch(arrow.NewSchema(nil, nil), nil, 2)
	defer empty.Release()
	if got := encodeRows(t, empty); !slices.Equal(got, []string{`{}`, `{}`}) {
		t.Fatalf("no columns: got %q", got)
	}
}

// TestJSONAppendsToDst checks that rows are appended after existing bytes.
func TestJSONAppendsToDst(t *testing.T) {
	mem := checkedMem(t)
	id := arrayFromJSON(t, mem, arrow.PrimitiveTypes.Int64, `[7, 8]`)
	defer id.Release()
	rec := recordOf(t, []arrow.Array{id}, "id")
	defer rec.Release()
	enc := boundJSON(t, rec)
	out := enc.AppendRow([]byte("prefix "), 1)
	out = enc.AppendRow(append(out, '\n'), 0)
	if want := "prefix {\"id\":8}\n{\"id\":7}"; string(out) != want {
		t.Fatalf("got %q, want %q", out, want)
	}
}

func TestJSONBindSchemaMismatch(t *testing.T) {
	mem := checkedMem(t)
	a := arrayFromJSON(t, mem, arrow.PrimitiveTypes.Int64, `[1]`)
	defer a.Release()
	b := arrayFromJSON(t, mem, arrow.PrimitiveTypes.Int32, `[1]`)
	defer b.Release()

	recA := recordOf(t, []arrow.Array{a}, "x")
	defer recA.Release()
	enc, err := NewJSON(recA.Schema())
	if err != nil {
		t.Fatal(err)
	}
	// An equal schema that is a different value binds fine.
	recA2 := recordOf(t, []arrow.Array{a}, "x")
	defer recA2.Release()
	if err := enc.Bind(recA2); err != nil {
		t.Fatalf("equal schema: %v", err)
	}

	for name, rec := range map[string]arrow.RecordBatch{
		"type":    recordOf(t, []arrow.Array{b}, "x"),
		"name":    recordOf(t, []arrow.Array{a}, "y"),
		"columns": recordOf(t, []arrow.Array{a, a}, "x", "y"),
	} {
		if err := enc.Bind(rec); err == nil {
			t.Errorf("%s mismatch: Bind succeeded", name)
		} else {
			t.Logf("%s mismatch: %v", name, err)
		}
		rec.Release()
	}
}

// testExtType is a minimal extension type; extensions are unsupported.
type testExtType struct{ arrow.ExtensionBase }

func (testExtType) ArrayType() reflect.Type { return reflect.TypeOf(array.ExtensionArrayBase{}) }
func (testExtType) ExtensionName() string   { return "test.ext" }
func (testExtType) Serialize() string       { return "" }
func (e testExtType) ExtensionEquals(o arrow.ExtensionType) bool {
	return o.ExtensionName() == e.ExtensionName()
}
func (testExtType) Deserialize(arrow.DataType, string) (arrow.ExtensionType, error) {
	return nil, errors.New("not implemented")
}

func TestNewJSONUnsupported(t *testing.T) {
	i32 := arrow.PrimitiveTypes.Int32
	union := arrow.SparseUnionOf([]arrow.Field{{Name: "a", Type: i32}}, []arrow.UnionTypeCode{0})
	dense := arrow.DenseUnionOf([]arrow.Field{{Name: "a", Type: i32}}, []arrow.UnionTypeCode{0})
	ext := &testExtType{arrow.ExtensionBase{Storage: i32}}
	for _, tc := range []struct {
		dt                arrow.DataType
		field, wantReason string
	}{
		{union, "x", "unsupported type union (sparse_union<a: type=int32=0>)"},
		{dense, "x", "unsupported type union (dense_union<a: type=int32=0>)"},
		{arrow.FixedWidthTypes.MonthInterval, "x", "unsupported type interval (month_interval)"},
		{arrow.FixedWidthTypes.DayTimeInterval, "x", "unsupported type interval (day_time_interval)"},
		{arrow.FixedWidthTypes.MonthDayNanoInterval, "x", "unsupported type interval (month_day_nano_interval)"},
		{ext, "x", "unsupported type extension (extension_type<storage=int32>)"},
		{arrow.StructOf(arrow.Field{Name: "ok", Type: i32}, arrow.Field{Name: "u", Type: union}), "s.u", ""},
		{arrow.StructOf(arrow.Field{Name: "t", Type: arrow.StructOf(arrow.Field{Name: "u", Type: ext})}), "s.t.u", ""},
		{arrow.ListOf(arrow.FixedWidthTypes.MonthInterval), "s.item", ""},
		{arrow.LargeListViewOf(union), "s.item", ""},
		{arrow.FixedSizeListOf(2, union), "s.item", ""},
		{arrow.MapOf(arrow.BinaryTypes.String, union), "s.value", ""},
		{arrow.MapOf(union, i32), "s.key", ""},
		{&arrow.DictionaryType{IndexType: i32, ValueType: ext}, "s", ""},
		{arrow.RunEndEncodedOf(i32, union), "s", ""},
	} {
		name := tc.field[:1]
		schema := arrow.NewSchema([]arrow.Field{{Name: "ok", Type: i32}, {Name: name, Type: tc.dt}}, nil)
		_, err := NewJSON(schema)
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%s: NewJSON error = %v, want *FieldError", tc.dt, err)
			continue
		}
		if fe.Field != tc.field {
			t.Errorf("%s: Field = %q, want %q", tc.dt, fe.Field, tc.field)
		}
		if tc.wantReason != "" && fe.Reason != tc.wantReason {
			t.Errorf("%s: Reason = %q, want %q", tc.dt, fe.Reason, tc.wantReason)
		}
	}
	err := &FieldError{Field: "x", Reason: "unsupported type union (sparse_union<a: type=int32=0>)"}
	if got, want := err.Error(), `column "x": unsupported type union (sparse_union<a: type=int32=0>)`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// TestJSONAppendRowAnyCapacity: a row comes out the same whatever room dst
// has (member keys are stored as two words when 16 bytes are free, appended
// otherwise), and bytes before dst's length are never touched.
func TestJSONAppendRowAnyCapacity(t *testing.T) {
	mem := checkedMem(t)
	id := arrayFromJSON(t, mem, arrow.PrimitiveTypes.Int64, `[7, -8]`)
	defer id.Release()
	name := arrayFromJSON(t, mem, arrow.BinaryTypes.String, `["a", "b\"c"]`)
	defer name.Release()
	long := arrayFromJSON(t, mem, arrow.PrimitiveTypes.Int8, `[1, null]`)
	defer long.Release()
	// keys of 6, 8, 16 and 25 bytes with their separators and quotes
	rec := recordOf(t, []arrow.Array{id, name, long}, "id", "name_1234567", "a_key_longer_than_sixteen")
	defer rec.Release()
	enc := boundJSON(t, rec)
	want := `>{"id":-8,"name_1234567":"b\"c","a_key_longer_than_sixteen":null}`
	for room := 0; room <= len(want)+20; room++ {
		backing := make([]byte, 1+room)
		for i := range backing {
			backing[i] = '#'
		}
		dst := append(backing[:0], '>')
		if got := enc.AppendRow(dst, 1); string(got) != want {
			t.Fatalf("with %d bytes of room: got %q, want %q", room, got, want)
		}
		if backing[0] != '>' {
			t.Fatalf("with %d bytes of room: the byte before dst's length was overwritten", room)
		}
	}
}
