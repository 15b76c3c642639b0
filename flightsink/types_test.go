package flightsink_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// allTypesSchema has one column of every kind of type flightsink maps to
// JSON. "user" serves as the key and "ts_ms" as the timestamp.
var allTypesSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "i8", Type: arrow.PrimitiveTypes.Int8},
	{Name: "i16", Type: arrow.PrimitiveTypes.Int16},
	{Name: "i32", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	{Name: "u8", Type: arrow.PrimitiveTypes.Uint8},
	{Name: "u16", Type: arrow.PrimitiveTypes.Uint16},
	{Name: "u32", Type: arrow.PrimitiveTypes.Uint32},
	{Name: "u64", Type: arrow.PrimitiveTypes.Uint64},
	{Name: "f32", Type: arrow.PrimitiveTypes.Float32},
	{Name: "f64", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "ok", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "user", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "note", Type: arrow.BinaryTypes.LargeString},
	{Name: "bin", Type: arrow.BinaryTypes.Binary},
	{Name: "fixed", Type: &arrow.FixedSizeBinaryType{ByteWidth: 3}},
	{Name: "d32", Type: arrow.FixedWidthTypes.Date32},
	{Name: "d64", Type: arrow.FixedWidthTypes.Date64},
	{Name: "t32", Type: arrow.FixedWidthTypes.Time32ms},
	{Name: "t64", Type: arrow.FixedWidthTypes.Time64us},
	{Name: "ts_ms", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}, Nullable: true},
	{Name: "ts_us", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "America/New_York"}},
	{Name: "ts_ns", Type: &arrow.TimestampType{Unit: arrow.Nanosecond}},
	{Name: "ts_s", Type: &arrow.TimestampType{Unit: arrow.Second}},
	{Name: "dur", Type: arrow.FixedWidthTypes.Duration_ms},
	{Name: "dec", Type: &arrow.Decimal128Type{Precision: 10, Scale: 2}},
	{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
	{Name: "pt", Type: arrow.StructOf(
		arrow.Field{Name: "x", Type: arrow.PrimitiveTypes.Int32},
		arrow.Field{Name: "y", Type: arrow.BinaryTypes.String, Nullable: true})},
	{Name: "attrs", Type: arrow.MapOf(arrow.BinaryTypes.String, arrow.PrimitiveTypes.Int32)},
	{Name: "cat", Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}},
}, nil)

var categories = []string{"books", "games", "music"}

// tsBase is 2026-01-02T03:04:05.678Z.
var tsBase = time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.UTC)

// allTypesRow is the Go truth of one row: what goes into Arrow and what the
// record value must say.
type allTypesRow struct {
	id     int64
	user   *string
	tsMs   *int64
	fields map[string]any // expected JSON value of every column
}

// makeAllTypesBatch builds rows [first, first+n) and their expected values.
func makeAllTypesBatch(mem memory.Allocator, first, n int) (arrow.RecordBatch, []allTypesRow) {
	b := array.NewRecordBuilder(mem, allTypesSchema)
	defer b.Release()
	rows := make([]allTypesRow, n)
	for k := 0; k < n; k++ {
		i := first + k
		exp := map[string]any{}
		row := allTypesRow{id: int64(i), fields: exp}

		b.Field(0).(*array.Int64Builder).Append(int64(i))
		exp["id"] = int64(i)
		b.Field(1).(*array.Int8Builder).Append(int8(i%200 - 100))
		exp["i8"] = int8(i%200 - 100)
		b.Field(2).(*array.Int16Builder).Append(int16(-i * 7))
		exp["i16"] = int16(-i * 7)
		if i%5 == 3 {
			b.Field(3).AppendNull()
			exp["i32"] = nil
		} else {
			b.Field(3).(*array.Int32Builder).Append(int32(i) * 100_000)
			exp["i32"] = int32(i) * 100_000
		}
		b.Field(4).(*array.Uint8Builder).Append(uint8(i))
		exp["u8"] = uint8(i)
		b.Field(5).(*array.Uint16Builder).Append(uint16(i * 3))
		exp["u16"] = uint16(i * 3)
		b.Field(6).(*array.Uint32Builder).Append(math.MaxUint32 - uint32(i))
		exp["u32"] = math.MaxUint32 - uint32(i)
		b.Field(7).(*array.Uint64Builder).Append(math.MaxUint64 - uint64(i))
		exp["u64"] = uint64(math.MaxUint64 - uint64(i))
		f32 := float32(i) * 0.1
		b.Field(8).(*array.Float32Builder).Append(f32)
		exp["f32"] = f32
		switch i % 4 {
		case 0:
			b.Field(9).(*array.Float64Builder).Append(float64(i) * 1.5e-7)
			exp["f64"] = float64(i) * 1.5e-7
		case 1:
			b.Field(9).(*array.Float64Builder).Append(1e21 * float64(i))
			exp["f64"] = 1e21 * float64(i)
		case 2:
			b.Field(9).(*array.Float64Builder).Append(math.NaN())
			exp["f64"] = nil
		default:
			b.Field(9).AppendNull()
			exp["f64"] = nil
		}
		if i%7 == 6 {
			b.Field(10).AppendNull()
			exp["ok"] = nil
		} else {
			b.Field(10).(*array.BooleanBuilder).Append(i%2 == 0)
			exp["ok"] = i%2 == 0
		}
		if i%9 == 8 {
			b.Field(11).AppendNull()
			exp["user"] = nil
		} else {
			u := fmt.Sprintf("user-%d", i%6)
			if i%6 == 5 {
				u = "q\"uo\\te\té\u2028<&>"
			}
			row.user = &u
			b.Field(11).(*array.StringBuilder).Append(u)
			exp["user"] = u
		}
		note := fmt.Sprintf("line %d\nsecond line \x01", i)
		b.Field(12).(*array.LargeStringBuilder).Append(note)
		exp["note"] = note
		bin := []byte{byte(i), 0xff, 0x00, byte(i >> 8)}
		b.Field(13).(*array.BinaryBuilder).Append(bin)
		exp["bin"] = base64.StdEncoding.EncodeToString(bin)
		fixed := []byte{1, 2, byte(i)}
		b.Field(14).(*array.FixedSizeBinaryBuilder).Append(fixed)
		exp["fixed"] = base64.StdEncoding.EncodeToString(fixed)
		day := tsBase.AddDate(0, 0, i)
		b.Field(15).(*array.Date32Builder).Append(arrow.Date32FromTime(day))
		exp["d32"] = day.Format("2006-01-02")
		b.Field(16).(*array.Date64Builder).Append(arrow.Date64FromTime(day.Truncate(24 * time.Hour)))
		exp["d64"] = day.Format("2006-01-02")
		ms := int32((3*3600+4*60+5)*1000 + i%1000)
		b.Field(17).(*array.Time32Builder).Append(arrow.Time32(ms))
		exp["t32"] = fmt.Sprintf("03:04:05.%03d", i%1000)
		us := int64(23*3600+59*60+58)*1_000_000 + int64(i)
		b.Field(18).(*array.Time64Builder).Append(arrow.Time64(us))
		exp["t64"] = fmt.Sprintf("23:59:58.%06d", i)
		ts := tsBase.Add(time.Duration(i) * time.Second)
		if i%11 == 10 {
			b.Field(19).AppendNull()
			exp["ts_ms"] = nil
		} else {
			msv := ts.UnixMilli()
			row.tsMs = &msv
			b.Field(19).(*array.TimestampBuilder).Append(arrow.Timestamp(msv))
			exp["ts_ms"] = ts.Format("2006-01-02T15:04:05.000Z")
		}
		tsu := ts.Add(time.Duration(i) * time.Microsecond)
		b.Field(20).(*array.TimestampBuilder).Append(arrow.Timestamp(tsu.UnixMicro()))
		exp["ts_us"] = tsu.Format("2006-01-02T15:04:05.000000Z")
		tsn := ts.Add(time.Duration(i) + 123)
		if i%3 == 0 {
			tsn = time.Date(1969, 7, 20, 20, 17, 40, i, time.UTC) // before the epoch
		}
		b.Field(21).(*array.TimestampBuilder).Append(arrow.Timestamp(tsn.UnixNano()))
		exp["ts_ns"] = tsn.Format("2006-01-02T15:04:05.000000000Z")
		b.Field(22).(*array.TimestampBuilder).Append(arrow.Timestamp(ts.Unix()))
		exp["ts_s"] = ts.Format("2006-01-02T15:04:05Z")
		b.Field(23).(*array.DurationBuilder).Append(arrow.Duration(int64(i) * -1500))
		exp["dur"] = int64(i) * -1500
		cents := int64(i)*123 - 500
		b.Field(24).(*array.Decimal128Builder).Append(decimal128.FromI64(cents))
		exp["dec"] = decimalText(cents, 2)

		lb := b.Field(25).(*array.ListBuilder)
		if i%8 == 7 {
			lb.AppendNull()
			exp["tags"] = nil
		} else {
			lb.Append(true)
			tags := []any{}
			for j := 0; j < i%3; j++ {
				tag := fmt.Sprintf("t%d", j)
				lb.ValueBuilder().(*array.StringBuilder).Append(tag)
				tags = append(tags, tag)
			}
			exp["tags"] = tags
		}
		sb := b.Field(26).(*array.StructBuilder)
		sb.Append(true)
		sb.FieldBuilder(0).(*array.Int32Builder).Append(int32(-i))
		pt := map[string]any{"x": int32(-i)}
		if i%2 == 1 {
			sb.FieldBuilder(1).AppendNull()
			pt["y"] = nil
		} else {
			sb.FieldBuilder(1).(*array.StringBuilder).Append("y" + fmt.Sprint(i))
			pt["y"] = "y" + fmt.Sprint(i)
		}
		exp["pt"] = pt
		mb := b.Field(27).(*array.MapBuilder)
		mb.Append(true)
		attrs := map[string]any{}
		for j := 0; j < 2; j++ {
			k := fmt.Sprintf("k%d", j)
			mb.KeyBuilder().(*array.StringBuilder).Append(k)
			mb.ItemBuilder().(*array.Int32Builder).Append(int32(i + j))
			attrs[k] = int32(i + j)
		}
		exp["attrs"] = attrs
		cat := categories[i%len(categories)]
		if err := b.Field(28).(*array.BinaryDictionaryBuilder).AppendString(cat); err != nil {
			panic(err)
		}
		exp["cat"] = cat
		rows[k] = row
	}
	return b.NewRecordBatch(), rows
}

func decimalText(v int64, scale int) string {
	neg := v < 0
	if neg {
		v = -v
	}
	s := fmt.Sprintf("%0*d", scale+1, v)
	s = s[:len(s)-scale] + "." + s[len(s)-scale:]
	if neg {
		s = "-" + s
	}
	return s
}

// normalize makes a JSON document comparable: numbers stay as their text,
// so float formatting and uint64 precision are checked exactly.
func normalize(b []byte) (any, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// expectedJSON is what encoding/json writes for the expected Go values:
// the mapping promises Go's number formatting at each column's width.
func expectedJSON(fields map[string]any) (any, error) {
	b, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	return normalize(b)
}

type jsonNumber = json.Number

// jsonKeys lists a JSON object's top-level keys in the order written.
func jsonKeys(b []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(b))
	var keys []string
	if _, err := dec.Token(); err != nil {
		return nil
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return keys
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return keys
		}
	}
	return keys
}
