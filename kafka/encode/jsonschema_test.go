package encode

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/xeipuuv/gojsonschema"
)

// TestJSONSchemaValidatesEveryRow derives the schema of each JSON test
// case's column, with each option, and validates every row the JSON
// encoder writes against it with an independent validator.
func TestJSONSchemaValidatesEveryRow(t *testing.T) {
	for _, opts := range []JSONOptions{{}, {TimestampFormat: "unix_millis", DecimalAsNumber: true}} {
		for _, tc := range slices.Concat(scalarCases(), nestedCases()) {
			t.Run(tc.name+"/"+opts.TimestampFormat, func(t *testing.T) {
				mem := checkedMem(t)
				arr := tc.build(mem)
				defer arr.Release()
				for _, nullable := range []bool{true, false} {
					rec := recordOf(t, []arrow.Array{arr}, "v")
					defer rec.Release()
					schema := rec.Schema()
					if !nullable {
						if arr.NullN() > 0 {
							continue
						}
						f := schema.Field(0)
						f.Nullable = false
						schema = arrow.NewSchema([]arrow.Field{f}, nil)
						rec = array.NewRecordBatch(schema, []arrow.Array{arr}, int64(arr.Len()))
						defer rec.Release()
					}
					text, err := JSONSchema(schema, "flightsink.t", opts)
					if err != nil {
						t.Fatal(err)
					}
					validator, err := gojsonschema.NewSchema(gojsonschema.NewStringLoader(text))
					if err != nil {
						t.Fatalf("%s: %v", text, err)
					}
					enc, err := NewJSONWithOptions(schema, opts)
					if err != nil {
						t.Fatal(err)
					}
					if err := enc.Bind(rec); err != nil {
						t.Fatal(err)
					}
					for i := range int(rec.NumRows()) {
						row := enc.AppendRow(nil, i)
						if !nullable && string(row) == `{"v":null}` {
							continue // a null Arrow does not flag (run-end encoded): not for a non-nullable column
						}
						res, err := validator.Validate(gojsonschema.NewBytesLoader(row))
						if err != nil {
							t.Fatalf("row %d %s: %v", i, row, err)
						}
						if !res.Valid() {
							t.Errorf("row %d %s does not validate against %s: %v", i, row, text, res.Errors())
						}
					}
				}
			})
		}
	}
}

func TestJSONSchemaText(t *testing.T) {
	str := arrow.BinaryTypes.String
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "name", Type: str, Nullable: true},
		{Name: "raw", Type: arrow.BinaryTypes.Binary},
		{Name: "attrs", Type: arrow.MapOf(str, arrow.PrimitiveTypes.Int32), Nullable: true},
		{Name: "pt", Type: arrow.StructOf(arrow.Field{Name: "x", Type: arrow.PrimitiveTypes.Float64})},
	}, nil)
	got, err := JSONSchema(schema, "flightsink.orders", JSONOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"$schema":"http://json-schema.org/draft-07/schema#","title":"flightsink.orders","type":"object","properties":{` +
		`"id":{"type":"integer"},"name":{"oneOf":[{"type":"null"},{"type":"string"}]},` +
		`"raw":{"type":"string","contentEncoding":"base64"},` +
		`"attrs":{"oneOf":[{"type":"null"},{"type":"object","additionalProperties":{"oneOf":[{"type":"null"},{"type":"integer"}]}}]},` +
		`"pt":{"type":"object","properties":{"x":{"type":["number","null"]}},"required":["x"],"additionalProperties":false}},` +
		`"required":["id","raw","pt"],"additionalProperties":false}`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestJSONSchemaRefusesDuplicates(t *testing.T) {
	i64 := arrow.PrimitiveTypes.Int64
	_, err := JSONSchema(arrow.NewSchema([]arrow.Field{{Name: "s", Type: arrow.StructOf(
		arrow.Field{Name: "a", Type: i64}, arrow.Field{Name: "a", Type: i64})}}, nil), "t", JSONOptions{})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "s.a" || !strings.Contains(fe.Reason, "duplicate") {
		t.Errorf("got %v, want a FieldError for s.a", err)
	}
	_, err = JSONSchema(arrow.NewSchema([]arrow.Field{{Name: "u", Type: arrow.FixedWidthTypes.DayTimeInterval}}, nil), "t", JSONOptions{})
	if !errors.As(err, &fe) || fe.Field != "u" {
		t.Errorf("got %v, want a FieldError for u", err)
	}
}

// TestJSONValue checks a bare column value and its schema.
func TestJSONValue(t *testing.T) {
	mem := checkedMem(t)
	arr := arrayFromJSON(t, mem, arrow.StructOf(arrow.Field{Name: "a", Type: arrow.PrimitiveTypes.Int64},
		arrow.Field{Name: "b", Type: arrow.BinaryTypes.String, Nullable: true}), `[{"a": 1, "b": "x"}, {"a": 2, "b": null}]`)
	defer arr.Release()
	rec := recordOf(t, []arrow.Array{arr}, "k")
	defer rec.Release()
	enc, err := NewJSONValue(rec.Schema(), JSONOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.Bind(rec); err != nil {
		t.Fatal(err)
	}
	text, err := JSONValueSchema(rec.Schema().Field(0), "flightsink.key.t", JSONOptions{})
	if err != nil {
		t.Fatal(err)
	}
	validator, err := gojsonschema.NewSchema(gojsonschema.NewStringLoader(text))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{`{"a":1,"b":"x"}`, `{"a":2,"b":null}`} {
		got := enc.AppendRow(nil, i)
		if string(got) != want {
			t.Errorf("row %d = %s, want %s", i, got, want)
		}
		if res, err := validator.Validate(gojsonschema.NewBytesLoader(got)); err != nil || !res.Valid() {
			t.Errorf("row %d does not validate against %s: %v %v", i, text, err, res)
		}
	}
}

// TestJSONSchemaNonFiniteFloats: a non-nullable float column's NaN and
// infinities are written as null, which its schema must allow.
func TestJSONSchemaNonFiniteFloats(t *testing.T) {
	mem := checkedMem(t)
	b := array.NewFloat64Builder(mem)
	defer b.Release()
	b.AppendValues([]float64{1.5, math.NaN(), math.Inf(-1)}, nil)
	arr := b.NewArray()
	defer arr.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "v", Type: arrow.PrimitiveTypes.Float64}}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{arr}, 3)
	defer rec.Release()
	text, err := JSONSchema(schema, "t", JSONOptions{})
	if err != nil {
		t.Fatal(err)
	}
	validator, err := gojsonschema.NewSchema(gojsonschema.NewStringLoader(text))
	if err != nil {
		t.Fatal(err)
	}
	enc, err := NewJSON(schema)
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.Bind(rec); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		row := enc.AppendRow(nil, i)
		if res, err := validator.Validate(gojsonschema.NewBytesLoader(row)); err != nil || !res.Valid() {
			t.Errorf("row %d %s does not validate against %s: %v", i, row, text, res.Errors())
		}
	}
}
