package encode

import (
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// checkedMem returns an allocator that fails the test if anything allocated
// through it is still live when the test ends.
func checkedMem(t testing.TB) *memory.CheckedAllocator {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

// arrayFromJSON builds an array of type dt from its arrow-go JSON form.
func arrayFromJSON(t testing.TB, mem memory.Allocator, dt arrow.DataType, js string) arrow.Array {
	t.Helper()
	arr, _, err := array.FromJSON(mem, dt, strings.NewReader(js))
	if err != nil {
		t.Fatalf("FromJSON(%s, %s): %v", dt, js, err)
	}
	return arr
}

// recordOf wraps arrays into a record batch with columns named c0, c1, ...
// unless names are given.
func recordOf(t testing.TB, cols []arrow.Array, names ...string) arrow.RecordBatch {
	t.Helper()
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		name := "c" + string(rune('0'+i))
		if i < len(names) {
			name = names[i]
		}
		fields[i] = arrow.Field{Name: name, Type: c.DataType(), Nullable: true}
	}
	n := int64(0)
	if len(cols) > 0 {
		n = int64(cols[0].Len())
	}
	return array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, n)
}

// boundJSON is a fresh JSON encoder for rec's schema, bound to rec.
func boundJSON(t testing.TB, rec arrow.RecordBatch) *JSON {
	t.Helper()
	enc, err := NewJSON(rec.Schema())
	if err != nil {
		t.Fatalf("NewJSON: %v", err)
	}
	if err := enc.Bind(rec); err != nil {
		t.Fatalf("Bind: %v", err)
	}
	return enc
}

// encodeRows encodes every row of rec with a fresh JSON encoder.
func encodeRows(t testing.TB, rec arrow.RecordBatch) []string {
	t.Helper()
	enc := boundJSON(t, rec)
	rows := make([]string, rec.NumRows())
	var buf []byte
	for i := range rows {
		buf = enc.AppendRow(buf[:0], i)
		rows[i] = string(buf)
	}
	return rows
}

// encodeValues encodes every element of arr as the only column of a batch
// and returns the JSON value texts.
func encodeValues(t testing.TB, arr arrow.Array) []string {
	t.Helper()
	rec := recordOf(t, []arrow.Array{arr}, "v")
	defer rec.Release()
	rows := encodeRows(t, rec)
	for i, r := range rows {
		v, ok := strings.CutPrefix(r, `{"v":`)
		if !ok || !strings.HasSuffix(v, "}") {
			t.Fatalf("row %d = %s, want {\"v\":...}", i, r)
		}
		rows[i] = v[:len(v)-1]
	}
	return rows
}
