package kafka

import (
	"github.com/flightsink/flightsink/kafka/sinkapi"

	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// BenchmarkFormats encodes 10k narrow rows into Kafka records per format
// (the whole per-batch path: values, keys, timestamps, size checks);
// reported per row.
func BenchmarkFormats(b *testing.B) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "user", Type: arrow.BinaryTypes.String},
		{Name: "ts", Type: arrow.FixedWidthTypes.Timestamp_us},
		{Name: "amount", Type: arrow.PrimitiveTypes.Float64},
		{Name: "category", Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}},
	}, nil)
	const n = 10_000
	bld := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	cats := []string{"books", "games", "music"}
	for i := 0; i < n; i++ {
		bld.Field(0).(*array.Int64Builder).Append(int64(i))
		bld.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("user-%d", i%1000))
		bld.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(1_767_322_800_000_000 + int64(i)))
		bld.Field(3).(*array.Float64Builder).Append(float64(i%10_000) / 100)
		_ = bld.Field(4).(*array.BinaryDictionaryBuilder).AppendString(cats[i%3])
	}
	rec := bld.NewRecordBatch()
	bld.Release()
	defer rec.Release()
	info := TopicInfo{Topic: "t", Partitions: 6, MaxMessageBytes: 1 << 20,
		TimestampBeforeMax: 1<<63 - 1, TimestampAfterMax: 1<<63 - 1}
	registry := func(string, Schema) (int, error) { return 1, nil }
	for _, format := range []Format{FormatJSON, FormatAvro, FormatRawString, FormatProtobuf, FormatJSONSchema, "avro+avro_key"} {
		b.Run(string(format), func(b *testing.B) {
			d := &RecordOptions{Topic: "t", Format: format, KeyField: "user", TimestampField: "ts"}
			var register RegisterFunc
			switch format {
			case FormatRawString:
				d.ValueField = "user"
			case FormatJSONSchema: // needs a registry: a fake one, the wire format header costs nothing per row
				register = registry
			case "avro+avro_key": // a record key of two columns in the Confluent wire format
				d.Format, d.KeyField, d.KeyFields, d.KeyFormat, register = FormatAvro, "", []string{"user", "id"}, KeyAvro, registry
			}
			p, err := NewPlan(schema, d, info, register)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := encodeBatch(p, rec); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
			b.ReportMetric(float64(testing.AllocsPerRun(1, func() { _, _ = encodeBatch(p, rec) }))/n, "allocs/row")
		})
	}
}

// encodeBatch encodes every row of rec, chunk by chunk, as a stream does.
func encodeBatch(p *Plan, rec arrow.RecordBatch) (records int, err error) {
	if err := p.Bind(rec); err != nil {
		return 0, err
	}
	now := time.Now()
	for from, rows := 0, int(rec.NumRows()); from < rows; {
		var out sinkapi.Chunk
		if out, from, err = p.Encode(rows, from, 0, 1, now); err != nil {
			return records, err
		}
		records += out.Len()
		out.Recycle()
	}
	return records, nil
}
