package encode

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// avroFuzzTypes are the JSON fuzzer's types plus the integer widths it
// lacks and types whose children are not nullable (their nulls are written
// as zeros).
var avroFuzzTypes = func() []arrow.DataType {
	i64, str := arrow.PrimitiveTypes.Int64, arrow.BinaryTypes.String
	return append(fuzzTypes[:len(fuzzTypes):len(fuzzTypes)],
		arrow.PrimitiveTypes.Uint8, arrow.PrimitiveTypes.Uint16, arrow.PrimitiveTypes.Uint32, arrow.PrimitiveTypes.Int16,
		arrow.FixedWidthTypes.Duration_s, &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "Europe/Berlin"},
		arrow.ListOfNonNullable(str),
		arrow.StructOf(
			arrow.Field{Name: "a", Type: i64},
			arrow.Field{Name: "f", Type: &arrow.FixedSizeBinaryType{ByteWidth: 2}},
			arrow.Field{Name: "d", Type: &arrow.Decimal128Type{Precision: 20, Scale: 3}},
			arrow.Field{Name: "s", Type: arrow.StructOf(arrow.Field{Name: "x", Type: arrow.PrimitiveTypes.Float32}, arrow.Field{Name: "l", Type: arrow.ListOf(str)})},
			arrow.Field{Name: "m", Type: arrow.MapOf(arrow.FixedWidthTypes.Date32, arrow.FixedWidthTypes.Time64ns)},
		),
		arrow.FixedSizeListOf(3, &arrow.Decimal32Type{Precision: 9, Scale: -4}),
	)
}()

// avroAppendRandom is appendRandom with generators for the integer widths
// it lacks (at the top level only).
func avroAppendRandom(b array.Builder, in *fuzzInput, nullable bool) {
	if nullable && in.intn(8) == 0 {
		b.AppendNull()
		return
	}
	switch b := b.(type) {
	case *array.Uint8Builder:
		b.Append(in.byte())
	case *array.Uint16Builder:
		b.Append(uint16(in.uint64()))
	case *array.Uint32Builder:
		b.Append(uint32(in.uint64()))
	default:
		appendRandom(b, in, false)
	}
}

// avroFuzzCheck builds a random array of one of avroFuzzTypes from data,
// as a nullable or non-nullable column (both may hold nulls), encodes it
// and checks that the library decodes every row, with the schema
// AvroSchema gives, to the reference value; with libBytes, that the
// library also encodes that value to the same bytes where its encoding is
// canonical. Slices (non-zero offsets) must encode like the rows they
// cover.
func avroFuzzCheck(t *testing.T, data []byte, libBytes bool) {
	in := &fuzzInput{data}
	dt := avroFuzzTypes[in.intn(len(avroFuzzTypes))]
	nullable := in.byte()&1 == 1
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	b := array.NewBuilder(mem, dt)
	for range in.intn(16) + 1 {
		avroAppendRandom(b, in, true)
	}
	arr := b.NewArray()
	b.Release()
	defer arr.Release()

	schema := arrow.NewSchema([]arrow.Field{{Name: "v", Type: dt, Nullable: nullable}}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{arr}, int64(arr.Len()))
	defer rec.Release()
	text, err := AvroSchema(schema, "Fuzz", "flightsink.test")
	if err != nil {
		t.Fatalf("%s: %v", dt, err)
	}
	rows, err := avroRows(rec)
	if err != nil {
		t.Fatalf("%s: %v", dt, err)
	}
	// Random time64[us] values overflow the library's time.Duration, so
	// it cannot re-encode them.
	avroCheckLibrary(t, text, rec, rows, libBytes && !strings.Contains(dt.String(), "time64[us]"))

	start := in.intn(arr.Len())
	end := start + in.intn(arr.Len()-start) + 1
	sl := array.NewSlice(arr, int64(start), int64(end))
	defer sl.Release()
	srec := array.NewRecordBatch(schema, []arrow.Array{sl}, int64(sl.Len()))
	defer srec.Release()
	got, err := avroRows(srec)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if !bytes.Equal(got[i], rows[start+i]) {
			t.Fatalf("%s slice [%d:%d] row %d:\n got % x\nwant % x", dt, start, end, i, got[i], rows[start+i])
		}
	}
}

// FuzzAvro checks random arrays of every type against the library.
func FuzzAvro(f *testing.F) {
	for k := range avroFuzzTypes {
		for _, nullable := range []byte{0, 1} {
			f.Add([]byte{byte(k), nullable, 5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20})
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		avroFuzzCheck(t, data, false)
	})
}

// TestAvroRandom runs the fuzz check on seeded random inputs for every type,
// comparing bytes with the library's too.
func TestAvroRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 7))
	for k := range avroFuzzTypes {
		for rep := range 40 {
			data := make([]byte, 512)
			for j := range data {
				data[j] = byte(r.Uint32())
			}
			data[0], data[1] = byte(k), byte(rep)
			if rep%5 == 0 { // some inputs run out, giving zeros
				data = data[:2+r.IntN(40)]
			}
			t.Run("", func(t *testing.T) { avroFuzzCheck(t, data, true) })
		}
	}
}
