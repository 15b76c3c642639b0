package benchdata

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flightsink/flightsink/kafka"
	"github.com/flightsink/flightsink/kafka/encode"
)

// benchBatch is one 10k-row record batch of a benchmark dataset, as the
// contenders send it.
func benchBatch(b *testing.B, name string) arrow.RecordBatch {
	b.Helper()
	var g generator
	switch name {
	case "narrow":
		g = newNarrow()
	case "wide":
		g = newWide()
	}
	return g.batch(rand.New(rand.NewPCG(1, 2)), 0, 10_000)
}

// BenchmarkEncode measures what the server spends per row of each dataset
// turning Arrow into Kafka records: the JSON values alone, and the whole
// record plan (values, keys, timestamps, limits) as a stream runs it.
func BenchmarkEncode(b *testing.B) {
	for _, name := range Datasets {
		rec := benchBatch(b, name)
		rows := int(rec.NumRows())
		b.Run(name+"/json", func(b *testing.B) {
			enc, err := encode.NewJSON(rec.Schema())
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 0, 16<<20)
			b.ReportAllocs()
			for b.Loop() {
				if err := enc.Bind(rec); err != nil {
					b.Fatal(err)
				}
				buf = buf[:0]
				for i := range rows {
					buf = enc.AppendRow(buf, i)
				}
			}
			b.SetBytes(int64(len(buf)))
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
		})
		b.Run(name+"/plan", func(b *testing.B) {
			info := kafka.TopicInfo{Topic: "t", Partitions: 6, MaxMessageBytes: 1 << 20,
				TimestampBeforeMax: 1<<63 - 1, TimestampAfterMax: 1<<63 - 1}
			p, err := kafka.NewPlan(rec.Schema(), &kafka.RecordOptions{Topic: "t", Format: kafka.FormatJSON,
				KeyField: KeyField, TimestampField: TimestampField}, info, nil)
			if err != nil {
				b.Fatal(err)
			}
			p.UsePool(kafka.NewRecordPool(64<<20 + 8<<20)) // as the server sets it: kafka.max_buffered_bytes and a chunk
			p.SetChunkBytes(8 << 20)
			b.ReportAllocs()
			now := time.Now()
			for b.Loop() {
				if err := p.Bind(rec); err != nil {
					b.Fatal(err)
				}
				for from := 0; from < rows; {
					out, next, err := p.Encode(rows, from, 0, 1, now)
					if err != nil {
						b.Fatal(err)
					}
					out.(*kafka.Records).Recycle()
					from = next
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
		})
	}
}
