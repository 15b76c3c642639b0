package encode

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

const benchRows = 100_000

// narrowBatch is the benchmark dataset: a typical narrow event table of
// benchRows rows (id int64, user string, ts timestamp[us], amount float64,
// category dictionary<int32, utf8>) with a few nulls.
var narrowBatch = sync.OnceValue(func() arrow.RecordBatch {
	mem := memory.DefaultAllocator
	r := rand.New(rand.NewPCG(9, 10))
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "user", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
		{Name: "amount", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "category", Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	ids := b.Field(0).(*array.Int64Builder)
	users := b.Field(1).(*array.StringBuilder)
	tss := b.Field(2).(*array.TimestampBuilder)
	amounts := b.Field(3).(*array.Float64Builder)
	cats := b.Field(4).(*array.BinaryDictionaryBuilder)
	categories := []string{"books", "electronics", "garden", "grocery", "toys", "sports", "fashion", "health"}
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixMicro()
	for i := range benchRows {
		ids.Append(int64(1_000_000 + i))
		if i%50 == 0 {
			users.AppendNull()
		} else {
			users.Append(fmt.Sprintf("user_%05d", r.IntN(50_000)))
		}
		tss.Append(arrow.Timestamp(start + int64(i)*1_234 + r.Int64N(1_000)))
		if i%100 == 0 {
			amounts.AppendNull()
		} else {
			amounts.Append(float64(r.IntN(1_000_000)) / 100)
		}
		if err := cats.AppendString(categories[r.IntN(len(categories))]); err != nil {
			panic(err)
		}
	}
	return b.NewRecordBatch()
})

func BenchmarkJSON(b *testing.B) {
	rec := narrowBatch()
	enc, err := NewJSON(rec.Schema())
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
			buf = append(buf, '\n')
		}
	}
	b.SetBytes(int64(len(buf)))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchRows, "ns/row")
}

func BenchmarkRecordToJSON(b *testing.B) {
	rec := narrowBatch()
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := array.RecordToJSON(rec, &buf); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(buf.Len()))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchRows, "ns/row")
}

// BenchmarkKeyAndTimestamp measures the other two per-row extractions.
func BenchmarkKeyAndTimestamp(b *testing.B) {
	rec := narrowBatch()
	key, err := NewKey(rec.Schema(), "user")
	if err != nil {
		b.Fatal(err)
	}
	ts, err := NewTimestamp(rec.Schema(), "ts")
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 16*benchRows)
	b.ReportAllocs()
	for b.Loop() {
		key.Bind(rec)
		ts.Bind(rec)
		buf = buf[:0]
		for i := range benchRows {
			buf, _ = key.AppendKey(buf, i)
			ts.Millis(i)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchRows, "ns/row")
}
