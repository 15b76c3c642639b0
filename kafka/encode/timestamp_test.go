package encode

import (
	"errors"
	"math"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

func TestTimestampMillis(t *testing.T) {
	const none = math.MinInt64 + 1 // marks a null row in want
	for _, tc := range []struct {
		dt   *arrow.TimestampType
		js   string
		want []int64
	}{
		{&arrow.TimestampType{Unit: arrow.Second}, `[1767323045, -1, null, 0, 9223372036854775807, -9223372036854775808]`,
			[]int64{1767323045000, -1000, none, 0, math.MaxInt64, math.MinInt64}},
		{&arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}, `[1767323045678, -1, null]`,
			[]int64{1767323045678, -1, none}},
		{&arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "Europe/Berlin"}, `[1767323045678901, -1, -1000, -1001, 999, null]`,
			[]int64{1767323045678, -1, -1, -2, 0, none}},
		{&arrow.TimestampType{Unit: arrow.Nanosecond}, `[1767323045678901234, -1, -1000000, -1000001, null, -9223372036854775808]`,
			[]int64{1767323045678, -1, -1, -2, none, -9223372036855}},
	} {
		t.Run(tc.dt.String(), func(t *testing.T) {
			mem := checkedMem(t)
			arr := fromJSON(tc.dt, tc.js)(mem)
			defer arr.Release()
			other := fromJSON(arrow.BinaryTypes.String, `["", "", "", "", "", ""]`)(mem)
			defer other.Release()
			sl := array.NewSlice(other, 0, int64(arr.Len()))
			defer sl.Release()
			rec := recordOf(t, []arrow.Array{sl, arr}, "x", "ts")
			defer rec.Release()

			ts, err := NewTimestamp(rec.Schema(), "ts")
			if err != nil {
				t.Fatal(err)
			}
			ts.Bind(rec)
			for i, want := range tc.want {
				ms, ok := ts.Millis(i)
				switch {
				case want == none && ok:
					t.Errorf("row %d: got %d, want null", i, ms)
				case want != none && (!ok || ms != want):
					t.Errorf("row %d: got %d, %v; want %d", i, ms, ok, want)
				}
			}
		})
	}
}

func TestNewTimestampErrors(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "a", Type: arrow.PrimitiveTypes.Int64},
		{Name: "b", Type: arrow.FixedWidthTypes.Date64},
	}, nil)
	for _, tc := range []struct{ field, reason string }{
		{"nope", "no such column (columns: a, b)"},
		{"a", "unsupported timestamp type int64 (want a timestamp column)"},
		{"b", "unsupported timestamp type date64 (want a timestamp column)"},
	} {
		_, err := NewTimestamp(schema, tc.field)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || fe.Reason != tc.reason {
			t.Errorf("NewTimestamp(%q) error = %#v, want FieldError{%q, %q}", tc.field, err, tc.field, tc.reason)
		}
	}
}
