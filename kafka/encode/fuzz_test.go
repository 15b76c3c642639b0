package encode

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/decimal256"
	"github.com/apache/arrow-go/v18/arrow/float16"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// FuzzJSONString checks string escaping through every string layout and as
// a column name: the output must be valid JSON, equal encoding/json's bytes
// (HTML escaping off) and decode back to the input.
func FuzzJSONString(f *testing.F) {
	for _, s := range []string{"", "hello", "a\"b\\c", "\x00\x1f\x7f", "<>&", "\u2028\u2029", "日本語", "\xff\xfe", "12345678\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		want := stdJSONString(t, s)
		for _, dt := range []arrow.DataType{arrow.BinaryTypes.String, arrow.BinaryTypes.LargeString, arrow.BinaryTypes.StringView} {
			b := array.NewBuilder(mem, dt)
			b.(interface{ Append(string) }).Append(s)
			arr := b.NewArray()
			b.Release()
			rec := recordOf(t, []arrow.Array{arr}, s)
			arr.Release()

			rows := encodeRows(t, rec)
			rec.Release()
			if !json.Valid([]byte(rows[0])) {
				t.Fatalf("%s: invalid JSON %q", dt, rows[0])
			}
			if wantRow := "{" + want + ":" + want + "}"; rows[0] != wantRow {
				t.Fatalf("%s: got %q, want %q", dt, rows[0], wantRow)
			}
			var obj map[string]string
			if err := json.Unmarshal([]byte(rows[0]), &obj); err != nil {
				t.Fatalf("%s: %q: %v", dt, rows[0], err)
			}
			if utf8.ValidString(s) && (len(obj) != 1 || obj[s] != s) {
				t.Fatalf("%s: %q decodes to %q", dt, rows[0], obj)
			}
		}
	})
}

// fuzzTypes are the column types FuzzJSONArray builds random arrays of.
var fuzzTypes = func() []arrow.DataType {
	str, i64 := arrow.BinaryTypes.String, arrow.PrimitiveTypes.Int64
	dictStr := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int16, ValueType: str}
	dictInt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: i64}
	return []arrow.DataType{
		arrow.Null, arrow.FixedWidthTypes.Boolean,
		arrow.PrimitiveTypes.Int8, arrow.PrimitiveTypes.Int32, i64, arrow.PrimitiveTypes.Uint64,
		arrow.FixedWidthTypes.Float16, arrow.PrimitiveTypes.Float32, arrow.PrimitiveTypes.Float64,
		&arrow.Decimal32Type{Precision: 9, Scale: 3}, &arrow.Decimal64Type{Precision: 18, Scale: 18},
		&arrow.Decimal128Type{Precision: 38, Scale: 5}, &arrow.Decimal256Type{Precision: 76, Scale: -2},
		str, arrow.BinaryTypes.LargeString, arrow.BinaryTypes.StringView,
		arrow.BinaryTypes.Binary, arrow.BinaryTypes.LargeBinary, arrow.BinaryTypes.BinaryView, &arrow.FixedSizeBinaryType{ByteWidth: 3},
		arrow.FixedWidthTypes.Date32, arrow.FixedWidthTypes.Date64,
		arrow.FixedWidthTypes.Time32s, arrow.FixedWidthTypes.Time32ms, arrow.FixedWidthTypes.Time64us, arrow.FixedWidthTypes.Time64ns,
		arrow.FixedWidthTypes.Timestamp_s, arrow.FixedWidthTypes.Timestamp_ms, arrow.FixedWidthTypes.Timestamp_us, arrow.FixedWidthTypes.Timestamp_ns,
		arrow.FixedWidthTypes.Duration_ns,
		arrow.ListOf(i64), arrow.LargeListOf(str), arrow.FixedSizeListOf(2, arrow.PrimitiveTypes.Float64),
		arrow.ListViewOf(arrow.PrimitiveTypes.Int32), arrow.LargeListViewOf(str),
		arrow.StructOf(arrow.Field{Name: "a", Type: i64, Nullable: true}, arrow.Field{Name: "b", Type: arrow.ListOf(str), Nullable: true}),
		arrow.MapOf(str, i64), arrow.MapOf(arrow.PrimitiveTypes.Int32, str),
		dictStr, dictInt,
		arrow.RunEndEncodedOf(arrow.PrimitiveTypes.Int32, str),
		arrow.ListOf(arrow.StructOf(
			arrow.Field{Name: "d", Type: dictStr, Nullable: true},
			arrow.Field{Name: "r", Type: arrow.RunEndEncodedOf(arrow.PrimitiveTypes.Int16, i64), Nullable: true},
			arrow.Field{Name: "m", Type: arrow.MapOf(str, arrow.ListOf(arrow.FixedWidthTypes.Timestamp_us)), Nullable: true},
		)),
	}
}()

// FuzzJSONArray builds a random array of one of fuzzTypes from the fuzz
// input and checks that every row encodes to valid JSON and that slices
// (non-zero offsets) encode exactly like the rows they cover.
func FuzzJSONArray(f *testing.F) {
	for k := range fuzzTypes {
		f.Add([]byte{byte(k), 5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20})
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := &fuzzInput{data}
		dt := fuzzTypes[in.intn(len(fuzzTypes))]
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)

		b := array.NewBuilder(mem, dt)
		for range in.intn(16) + 1 {
			appendRandom(b, in, true)
		}
		arr := b.NewArray()
		b.Release()
		defer arr.Release()
		// Structural check only: strings with invalid UTF-8 are meant to
		// be generated. arrow-go's validator rejects its own run-end-encoded
		// arrays (it expects a validity buffer slot), so those are skipped.
		if err := array.Validate(arr); err != nil && !strings.Contains(dt.String(), "run_end_encoded") {
			t.Fatalf("generated invalid %s array: %v", dt, err)
		}

		rows := encodeValues(t, arr)
		for i, r := range rows {
			if !json.Valid([]byte(r)) {
				t.Fatalf("%s row %d: invalid JSON %q", dt, i, r)
			}
		}
		start := in.intn(arr.Len())
		end := start + in.intn(arr.Len()-start) + 1
		sl := array.NewSlice(arr, int64(start), int64(end))
		defer sl.Release()
		if got := encodeValues(t, sl); !slices.Equal(got, rows[start:end]) {
			t.Fatalf("%s slice [%d:%d]:\n got %q\nwant %q", dt, start, end, got, rows[start:end])
		}
	})
}

// fuzzInput hands out fuzz bytes, then zeros once they run out.
type fuzzInput struct{ b []byte }

func (in *fuzzInput) byte() byte {
	if len(in.b) == 0 {
		return 0
	}
	c := in.b[0]
	in.b = in.b[1:]
	return c
}

func (in *fuzzInput) intn(n int) int { return int(in.byte()) % n }

func (in *fuzzInput) uint64() uint64 {
	var v uint64
	for k := range 8 {
		v |= uint64(in.byte()) << (8 * k)
	}
	return v
}

func (in *fuzzInput) bytes(max int) []byte {
	n := min(in.intn(max+1), len(in.b))
	v := in.b[:n]
	in.b = in.b[n:]
	return v
}

// appendRandom appends one random element (null only if nullable) to b.
func appendRandom(b array.Builder, in *fuzzInput, nullable bool) {
	if nullable && in.intn(8) == 0 {
		b.AppendNull()
		return
	}
	switch b := b.(type) {
	case *array.NullBuilder:
		b.AppendNull()
	case *array.BooleanBuilder:
		b.Append(in.byte()&1 == 1)
	case *array.Int8Builder:
		b.Append(int8(in.byte()))
	case *array.Int16Builder:
		b.Append(int16(in.uint64()))
	case *array.Int32Builder:
		b.Append(int32(in.uint64()))
	case *array.Int64Builder:
		b.Append(int64(in.uint64()))
	case *array.Uint64Builder:
		b.Append(in.uint64())
	case *array.Float16Builder:
		b.Append(float16.FromBits(uint16(in.uint64())))
	case *array.Float32Builder:
		b.Append(math.Float32frombits(uint32(in.uint64())))
	case *array.Float64Builder:
		b.Append(math.Float64frombits(in.uint64()))
	case *array.Decimal32Builder:
		b.Append(decimal.Decimal32(int32(in.uint64())))
	case *array.Decimal64Builder:
		b.Append(decimal.Decimal64(int64(in.uint64())))
	case *array.Decimal128Builder:
		b.Append(decimal128.New(int64(in.uint64()), in.uint64()))
	case *array.Decimal256Builder:
		b.Append(decimal256.New(in.uint64(), in.uint64(), in.uint64(), in.uint64()))
	case *array.StringBuilder:
		b.Append(string(in.bytes(20)))
	case *array.LargeStringBuilder:
		b.Append(string(in.bytes(20)))
	case *array.StringViewBuilder:
		b.Append(string(in.bytes(20)))
	case *array.BinaryBuilder:
		b.Append(in.bytes(20))
	case *array.BinaryViewBuilder:
		b.Append(in.bytes(20))
	case *array.FixedSizeBinaryBuilder:
		v := make([]byte, b.Type().(*arrow.FixedSizeBinaryType).ByteWidth)
		copy(v, in.bytes(len(v)))
		b.Append(v)
	case *array.Date32Builder:
		b.Append(arrow.Date32(int32(in.uint64())))
	case *array.Date64Builder:
		b.Append(arrow.Date64(int64(in.uint64())))
	case *array.Time32Builder:
		b.Append(arrow.Time32(int32(in.uint64())))
	case *array.Time64Builder:
		b.Append(arrow.Time64(int64(in.uint64())))
	case *array.TimestampBuilder:
		b.Append(arrow.Timestamp(int64(in.uint64())))
	case *array.DurationBuilder:
		b.Append(arrow.Duration(int64(in.uint64())))
	case *array.MapBuilder:
		n := in.intn(4)
		b.AppendWithSize(true, n)
		for range n {
			appendRandom(b.KeyBuilder(), in, false)
			appendRandom(b.ItemBuilder(), in, true)
		}
	case *array.FixedSizeListBuilder:
		b.Append(true)
		for range b.Type().(*arrow.FixedSizeListType).Len() {
			appendRandom(b.ValueBuilder(), in, true)
		}
	case array.VarLenListLikeBuilder:
		n := in.intn(4)
		b.AppendWithSize(true, n)
		for range n {
			appendRandom(b.ValueBuilder(), in, true)
		}
	case *array.StructBuilder:
		b.Append(true)
		for k := range b.NumField() {
			appendRandom(b.FieldBuilder(k), in, true)
		}
	case *array.BinaryDictionaryBuilder:
		if err := b.Append(in.bytes(3)); err != nil {
			panic(err)
		}
	case *array.Int64DictionaryBuilder:
		if err := b.Append(int64(in.intn(5))); err != nil {
			panic(err)
		}
	case *array.RunEndEncodedBuilder:
		if b.Len() > 0 && in.intn(2) == 0 {
			b.ContinueRun(1)
			return
		}
		b.Append(1)
		appendRandom(b.ValueBuilder(), in, true)
	default:
		panic("appendRandom: no generator for " + b.Type().String())
	}
}
