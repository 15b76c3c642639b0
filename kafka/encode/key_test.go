package encode

import (
	"errors"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// keyCase is a key column and the expected key of each row; "<nil>" marks
// a row without key.
type keyCase struct {
	name  string
	build func(mem memory.Allocator) arrow.Array
	want  []string
}

const noKey = "<nil>"

func TestKey(t *testing.T) {
	str := arrow.BinaryTypes.String
	for _, tc := range []keyCase{
		{"utf8", fromJSON(str, `["a", null, "", "日\"本"]`), []string{"a", noKey, "", "日\"本"}},
		{"large_utf8", fromJSON(arrow.BinaryTypes.LargeString, `["a", null, "b"]`), []string{"a", noKey, "b"}},
		{"string_view", fromJSON(arrow.BinaryTypes.StringView, `["short", null, "a rather long string key"]`), []string{"short", noKey, "a rather long string key"}},
		{"binary", binariesOf(arrow.BinaryTypes.Binary), []string{"\x00\x01\x02", "", noKey, "hello world, this is long", "\xff"}},
		{"large_binary", binariesOf(arrow.BinaryTypes.LargeBinary), []string{"\x00\x01\x02", "", noKey, "hello world, this is long", "\xff"}},
		{"binary_view", binariesOf(arrow.BinaryTypes.BinaryView), []string{"\x00\x01\x02", "", noKey, "hello world, this is long", "\xff"}},
		{"fixed_size_binary", fromJSON(&arrow.FixedSizeBinaryType{ByteWidth: 2}, `["YWI=", null, "Y2Q="]`), []string{"ab", noKey, "cd"}},
		{"int8", fromJSON(arrow.PrimitiveTypes.Int8, `[-128, null, 127]`), []string{"-128", noKey, "127"}},
		{"int16", fromJSON(arrow.PrimitiveTypes.Int16, `[-32768, 5]`), []string{"-32768", "5"}},
		{"int32", fromJSON(arrow.PrimitiveTypes.Int32, `[7, null]`), []string{"7", noKey}},
		{"int64", fromJSON(arrow.PrimitiveTypes.Int64, `[-9223372036854775808, 42]`), []string{"-9223372036854775808", "42"}},
		{"uint8", fromJSON(arrow.PrimitiveTypes.Uint8, `[255, null]`), []string{"255", noKey}},
		{"uint16", fromJSON(arrow.PrimitiveTypes.Uint16, `[65535]`), []string{"65535"}},
		{"uint32", fromJSON(arrow.PrimitiveTypes.Uint32, `[4294967295]`), []string{"4294967295"}},
		{"uint64", uint64Array, []string{"0", "18446744073709551615", noKey}},
		{"dictionary utf8", fromJSON(&arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: str}, `["cat", "dog", null, "cat"]`),
			[]string{"cat", "dog", noKey, "cat"}},
		{"dictionary with null entry", func(mem memory.Allocator) arrow.Array {
			dict := fromJSON(str, `["x", null]`)(mem)
			defer dict.Release()
			idx := fromJSON(arrow.PrimitiveTypes.Uint16, `[1, 0, null]`)(mem)
			defer idx.Release()
			return array.NewDictionaryArray(&arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Uint16, ValueType: str}, idx, dict)
		}, []string{noKey, "x", noKey}},
		{"dictionary binary", fromJSON(&arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.Binary}, `["AAE=", "AAE="]`),
			[]string{"\x00\x01", "\x00\x01"}},
		{"dictionary int64", fromJSON(&arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int64, ValueType: arrow.PrimitiveTypes.Int64}, `[10, 20, 10]`),
			[]string{"10", "20", "10"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := checkedMem(t)
			arr := tc.build(mem)
			defer arr.Release()
			check := func(arr arrow.Array, want []string) {
				t.Helper()
				rec := recordOf(t, []arrow.Array{arr}, "k")
				defer rec.Release()
				k, err := NewKey(rec.Schema(), "k")
				if err != nil {
					t.Fatal(err)
				}
				k.Bind(rec)
				got := make([]string, arr.Len())
				for i := range got {
					out, ok := k.AppendKey([]byte("p:"), i)
					switch {
					case !ok && string(out) != "p:":
						t.Errorf("row %d: no key but dst changed to %q", i, out)
					case !ok:
						got[i] = noKey
					default:
						got[i] = string(out[2:])
					}
				}
				if !slices.Equal(got, want) {
					t.Errorf("got %q, want %q", got, want)
				}
			}
			check(arr, tc.want)
			sl := array.NewSlice(arr, 1, int64(arr.Len()))
			defer sl.Release()
			check(sl, tc.want[1:])
		})
	}
}

func TestNewKeyErrors(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "a", Type: arrow.PrimitiveTypes.Float64},
		{Name: "b", Type: arrow.ListOf(arrow.BinaryTypes.String)},
		{Name: "c", Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.PrimitiveTypes.Float32}},
		{Name: "d", Type: &arrow.TimestampType{Unit: arrow.Millisecond}},
	}, nil)
	for _, tc := range []struct{ field, reason string }{
		{"missing", "no such column (columns: a, b, c, d)"},
		{"a", "unsupported key type float64 (want a string, binary or integer column)"},
		{"b", "unsupported key type list<item: utf8, nullable> (want a string, binary or integer column)"},
		{"c", "unsupported key type dictionary<values=float32, indices=int32, ordered=false> (want a string, binary or integer column)"},
		{"d", "unsupported key type timestamp[ms] (want a string, binary or integer column)"},
	} {
		_, err := NewKey(schema, tc.field)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || fe.Reason != tc.reason {
			t.Errorf("NewKey(%q) error = %#v, want FieldError{%q, %q}", tc.field, err, tc.field, tc.reason)
		}
	}
}

func TestKeyBindPanicsOnTypeChange(t *testing.T) {
	mem := checkedMem(t)
	a := fromJSON(arrow.BinaryTypes.String, `["x"]`)(mem)
	defer a.Release()
	b := fromJSON(arrow.PrimitiveTypes.Int32, `[1]`)(mem)
	defer b.Release()
	recA := recordOf(t, []arrow.Array{a}, "k")
	defer recA.Release()
	recB := recordOf(t, []arrow.Array{b}, "k")
	defer recB.Release()
	k, err := NewKey(recA.Schema(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Bind with a different key type did not panic")
		}
	}()
	k.Bind(recB)
}
