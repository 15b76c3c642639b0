package encode

import (
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
)

// TestAppendRowDoesNotAllocate checks the steady state of every supported
// type: once bound, appending rows into a buffer with room allocates
// nothing. Key and Timestamp extraction are checked too.
func TestAppendRowDoesNotAllocate(t *testing.T) {
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
			enc, err := NewJSON(rec.Schema())
			if err != nil {
				t.Fatal(err)
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

func TestKeyAndTimestampDoNotAllocate(t *testing.T) {
	mem := checkedMem(t)
	key := fromJSON(&arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}, `["a", null, "b"]`)(mem)
	defer key.Release()
	ts := fromJSON(&arrow.TimestampType{Unit: arrow.Nanosecond}, `[1, null, -1]`)(mem)
	defer ts.Release()
	rec := recordOf(t, []arrow.Array{key, ts}, "k", "ts")
	defer rec.Release()
	k, err := NewKey(rec.Schema(), "k")
	if err != nil {
		t.Fatal(err)
	}
	tsx, err := NewTimestamp(rec.Schema(), "ts")
	if err != nil {
		t.Fatal(err)
	}
	k.Bind(rec)
	tsx.Bind(rec)
	buf := make([]byte, 0, 64)
	allocs := testing.AllocsPerRun(100, func() {
		for i := range 3 {
			buf, _ = k.AppendKey(buf[:0], i)
			tsx.Millis(i)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations, want 0", allocs)
	}
}
