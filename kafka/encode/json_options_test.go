package encode

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestJSONOptions(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
		{Name: "ns", Type: &arrow.TimestampType{Unit: arrow.Nanosecond}},
		{Name: "d", Type: &arrow.Decimal128Type{Precision: 10, Scale: 2}, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	b.Field(0).(*array.TimestampBuilder).Append(1_767_323_045_678_901)
	b.Field(1).(*array.TimestampBuilder).Append(-1)
	b.Field(2).(*array.Decimal128Builder).Append(decimal128.FromI64(-1230))
	b.Field(0).AppendNull()
	b.Field(1).(*array.TimestampBuilder).Append(1_500_000)
	b.Field(2).AppendNull()
	rec := b.NewRecordBatch()
	defer rec.Release()
	cases := []struct {
		opts JSONOptions
		want []string
	}{
		{JSONOptions{}, []string{`{"ts":"2026-01-02T03:04:05.678901Z","ns":"1969-12-31T23:59:59.999999999Z","d":"-12.30"}`,
			`{"ts":null,"ns":"1970-01-01T00:00:00.001500000Z","d":null}`}},
		{JSONOptions{TimestampFormat: "unix_millis", DecimalAsNumber: true}, []string{`{"ts":1767323045678,"ns":-1,"d":-12.30}`,
			`{"ts":null,"ns":1,"d":null}`}},
		{JSONOptions{TimestampFormat: "unix_micros"}, []string{`{"ts":1767323045678901,"ns":-1,"d":"-12.30"}`,
			`{"ts":null,"ns":1500,"d":null}`}},
	}
	for _, c := range cases {
		e, err := NewJSONWithOptions(schema, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Bind(rec); err != nil {
			t.Fatal(err)
		}
		for i, want := range c.want {
			if got := string(e.AppendRow(nil, i)); got != want {
				t.Errorf("%+v row %d:\n got %s\nwant %s", c.opts, i, got, want)
			}
		}
	}
	if _, err := NewJSONWithOptions(schema, JSONOptions{TimestampFormat: "iso"}); err == nil {
		t.Error("an unknown timestamp format was accepted")
	}
}
