package encode

import (
	"bytes"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/hamba/avro/v2"
)

// BenchmarkAvro encodes the narrow benchmark batch (see bench_test.go) as
// Avro datums.
func BenchmarkAvro(b *testing.B) {
	rec := narrowBatch()
	enc, err := NewAvro(rec.Schema())
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 16<<20) // room for the whole batch: measure encoding only
	b.ReportAllocs()
	for b.Loop() {
		if err := enc.Bind(rec); err != nil {
			b.Fatal(err)
		}
		buf = buf[:0]
		for i := range benchRows {
			buf = enc.AppendRow(buf, i)
		}
	}
	b.SetBytes(int64(len(buf)))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchRows, "ns/row")
}

// avroNarrowRow is a row of the narrow batch for the library, which
// encodes Go structs (its fastest input) by their avro tags.
type avroNarrowRow struct {
	ID       int64     `avro:"id"`
	User     *string   `avro:"user"`
	TS       time.Time `avro:"ts"`
	Amount   *float64  `avro:"amount"`
	Category string    `avro:"category"`
}

// avroNarrowRows converts the narrow batch to library rows.
func avroNarrowRows() []avroNarrowRow {
	rec := narrowBatch()
	ids := rec.Column(0).(*array.Int64)
	users := rec.Column(1).(*array.String)
	tss := rec.Column(2).(*array.Timestamp)
	amounts := rec.Column(3).(*array.Float64)
	cats := rec.Column(4).(*array.Dictionary)
	catVals := cats.Dictionary().(*array.String)
	rows := make([]avroNarrowRow, rec.NumRows())
	for i := range rows {
		r := &rows[i]
		r.ID = ids.Value(i)
		if users.IsValid(i) {
			u := users.Value(i)
			r.User = &u
		}
		r.TS = time.UnixMicro(int64(tss.Value(i))).UTC()
		if amounts.IsValid(i) {
			a := amounts.Value(i)
			r.Amount = &a
		}
		r.Category = catVals.Value(cats.GetValueIndex(i))
	}
	return rows
}

// BenchmarkAvroLibrary has github.com/hamba/avro/v2 encode the same rows,
// from Go structs built beforehand (the conversion from Arrow is not
// timed), with the schema AvroSchema derives, into one reused buffer. The
// bytes are checked to equal BenchmarkAvro's.
func BenchmarkAvroLibrary(b *testing.B) {
	rec := narrowBatch()
	text, err := AvroSchema(rec.Schema(), "Narrow", "bench")
	if err != nil {
		b.Fatal(err)
	}
	schema, err := parseAvro(text)
	if err != nil {
		b.Fatal(err)
	}
	rows := avroNarrowRows()
	api := avro.Config{DisableBlockSizeHeader: true}.Freeze()
	w := avro.NewWriter(nil, 16<<20, avro.WithWriterConfig(api))

	// The library's bytes must be ours.
	enc, err := NewAvro(rec.Schema())
	if err != nil {
		b.Fatal(err)
	}
	if err := enc.Bind(rec); err != nil {
		b.Fatal(err)
	}
	var ours []byte
	for i := range rows {
		ours = enc.AppendRow(ours, i)
		w.WriteVal(schema, &rows[i])
	}
	if w.Error != nil {
		b.Fatal(w.Error)
	}
	if !bytes.Equal(w.Buffer(), ours) {
		b.Fatal("the library's encoding differs from ours")
	}

	b.ReportAllocs()
	for b.Loop() {
		w.Reset(nil)
		for i := range rows {
			w.WriteVal(schema, &rows[i])
		}
	}
	if w.Error != nil {
		b.Fatal(w.Error)
	}
	b.SetBytes(int64(w.Buffered()))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchRows, "ns/row")
}

// BenchmarkAvroLibraryFromArrow is BenchmarkAvroLibrary with the
// conversion of each Arrow row to a Go struct timed too, as a sink using
// the library would have to do.
func BenchmarkAvroLibraryFromArrow(b *testing.B) {
	rec := narrowBatch()
	text, err := AvroSchema(rec.Schema(), "Narrow", "bench")
	if err != nil {
		b.Fatal(err)
	}
	schema, err := parseAvro(text)
	if err != nil {
		b.Fatal(err)
	}
	api := avro.Config{DisableBlockSizeHeader: true}.Freeze()
	w := avro.NewWriter(nil, 16<<20, avro.WithWriterConfig(api))
	ids := rec.Column(0).(*array.Int64)
	users := rec.Column(1).(*array.String)
	tss := rec.Column(2).(*array.Timestamp)
	amounts := rec.Column(3).(*array.Float64)
	cats := rec.Column(4).(*array.Dictionary)
	catVals := cats.Dictionary().(*array.String)
	b.ReportAllocs()
	for b.Loop() {
		w.Reset(nil)
		for i := range benchRows {
			var r avroNarrowRow
			r.ID = ids.Value(i)
			var u string
			if users.IsValid(i) {
				u = users.Value(i)
				r.User = &u
			}
			r.TS = time.UnixMicro(int64(tss.Value(i))).UTC()
			var a float64
			if amounts.IsValid(i) {
				a = amounts.Value(i)
				r.Amount = &a
			}
			r.Category = catVals.Value(cats.GetValueIndex(i))
			w.WriteVal(schema, &r)
		}
	}
	if w.Error != nil {
		b.Fatal(w.Error)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchRows, "ns/row")
}
