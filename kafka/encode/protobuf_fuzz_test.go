package encode

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"
)

// protobufFuzzCheck builds a random array of one of avroFuzzTypes from
// data, as a nullable or non-nullable column (both may hold nulls),
// encodes it and checks that dynamicpb reads every row and, for types
// without maps (whose entries protobuf sorts), that protobuf's own
// deterministic encoder writes the decoded message to the same bytes.
// Slices (non-zero offsets) must encode like the rows they cover.
func protobufFuzzCheck(t *testing.T, data []byte) {
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
	enc, err := NewProtobuf(schema, "flightsink.test", "Fuzz")
	if err != nil {
		t.Fatalf("%s: %v", dt, err)
	}
	rows := func(a arrow.Array) [][]byte {
		rec := array.NewRecordBatch(schema, []arrow.Array{a}, int64(a.Len()))
		defer rec.Release()
		if err := enc.Bind(rec); err != nil {
			t.Fatal(err)
		}
		out := make([][]byte, a.Len())
		for i := range out {
			out[i] = enc.AppendRow(nil, i)
		}
		return out
	}
	all := rows(arr)
	canonical := !bytes.Contains([]byte(dt.String()), []byte("map<"))
	for i, row := range all {
		msg := dynamicpb.NewMessage(enc.Descriptor())
		if err := proto.Unmarshal(row, msg); err != nil {
			t.Fatalf("%s row %d: dynamicpb cannot read % x: %v", dt, i, row, err)
		}
		if !canonical {
			continue
		}
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(row, want) && !nanQuieted(row, want) {
			t.Fatalf("%s row %d:\n got % x\nwant % x (protobuf's encoding of what it read)", dt, i, row, want)
		}
	}

	start := in.intn(arr.Len())
	end := start + in.intn(arr.Len()-start) + 1
	sl := array.NewSlice(arr, int64(start), int64(end))
	defer sl.Release()
	for i, got := range rows(sl) {
		if !bytes.Equal(got, all[start+i]) {
			t.Fatalf("%s slice [%d:%d] row %d:\n got % x\nwant % x", dt, start, end, i, got, all[start+i])
		}
	}
}

// nanQuieted reports whether got and want differ only in quiet bits of
// NaNs (float 0x40 of byte 2, double 0x08 of byte 6): dynamicpb keeps
// floats as float64, which sets the quiet bit of a signalling NaN that the
// encoder wrote as Arrow holds it.
func nanQuieted(got, want []byte) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if d := got[i] ^ want[i]; d != 0 && d != 0x40 && d != 0x08 {
			return false
		}
	}
	return true
}

// FuzzProtobuf checks random arrays of every type against dynamicpb.
func FuzzProtobuf(f *testing.F) {
	for k := range avroFuzzTypes {
		for _, nullable := range []byte{0, 1} {
			f.Add([]byte{byte(k), nullable, 5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20})
		}
	}
	f.Fuzz(protobufFuzzCheck)
}

// TestProtobufRandom runs the fuzz check on seeded random inputs for every
// type.
func TestProtobufRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 9))
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
			t.Run("", func(t *testing.T) { protobufFuzzCheck(t, data) })
		}
	}
}
