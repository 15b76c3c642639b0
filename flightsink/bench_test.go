package flightsink_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	client "github.com/flightsink/flightsink/clients/go/fsclient"
	"github.com/flightsink/flightsink/internal/kafkatest"
)

// Run against the real broker, e.g.:
//
//	make kafka-up   # prints KAFKA_BROKERS=127.0.0.1:PORT
//	FLIGHTSINK_TEST_BROKERS=127.0.0.1:PORT go test -run '^$' -bench 'StreamOpen|Throughput' -benchtime 1x ./flightsink/
//
// Each reports its figures as metrics; compare them as ratios within one run.

// BenchmarkStreamOpen measures opening and cleanly closing an empty stream:
// at-least-once (shared producer), exactly-once from the producer pool, and
// a named exactly-once writer (a fresh producer, fencing, a progress read).
func BenchmarkStreamOpen(b *testing.B) {
	env := startServer(b)
	topic := kafkatest.TopicName(b)
	kafkatest.CreateTopic(b, env.brokers, topic, 1, nil)
	c, err := client.Dial(env.addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	cases := []struct {
		name string
		desc client.Descriptor
	}{
		{"at_least_once", client.Descriptor{Topic: topic, Delivery: "at_least_once"}},
		{"exactly_once_pool", client.Descriptor{Topic: topic, Delivery: "exactly_once"}},
		{"exactly_once_named", client.Descriptor{Topic: topic, Delivery: "exactly_once", WriterID: "bench-open"}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			for i := 0; i < b.N; i++ {
				w, err := c.Open(ctx, tc.desc, simpleSchema)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := w.Close(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

var narrowSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "user", Type: arrow.BinaryTypes.String},
	{Name: "ts", Type: arrow.FixedWidthTypes.Timestamp_us},
	{Name: "amount", Type: arrow.PrimitiveTypes.Float64},
	{Name: "category", Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}},
}, nil)

// narrowBatch is n rows of the benchmark's narrow dataset.
func narrowBatch(first, n int) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, narrowSchema)
	defer b.Release()
	cats := []string{"books", "games", "music", "garden", "tools"}
	for i := first; i < first+n; i++ {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("user-%d", i%10_000))
		b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(1_767_322_800_000_000 + int64(i)*1000))
		b.Field(3).(*array.Float64Builder).Append(float64(i%100_000) / 100)
		_ = b.Field(4).(*array.BinaryDictionaryBuilder).AppendString(cats[i%len(cats)])
	}
	return b.NewRecordBatch()
}

// BenchmarkThroughput streams 1M narrow rows (batches of 10k) per
// iteration: at-least-once, and exactly-once with a checkpoint every 10k,
// 100k and 1M rows.
func BenchmarkThroughput(b *testing.B) {
	env := startServer(b)
	c, err := client.Dial(env.addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	const total, batchRows = 1_000_000, 10_000
	batches := make([]arrow.RecordBatch, total/batchRows)
	for i := range batches {
		batches[i] = narrowBatch(i*batchRows, batchRows)
		defer batches[i].Release()
	}
	cases := []struct {
		name     string
		delivery string
		every    int
	}{
		{"at_least_once", "at_least_once", total},
		{"exactly_once_ckpt_10k", "exactly_once", 10_000},
		{"exactly_once_ckpt_100k", "exactly_once", 100_000},
		{"exactly_once_ckpt_1m", "exactly_once", total},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			topic := kafkatest.TopicName(b)
			kafkatest.CreateTopic(b, env.brokers, topic, 3, nil)
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				w, err := c.Open(ctx, client.Descriptor{Topic: topic, Delivery: tc.delivery, KeyField: "user"}, narrowSchema)
				if err != nil {
					b.Fatal(err)
				}
				for j, rec := range batches {
					if err := w.Write(rec); err != nil {
						b.Fatal(err)
					}
					if ((j+1)*batchRows)%tc.every == 0 && (j+1)*batchRows < total {
						if _, err := w.Checkpoint(ctx); err != nil {
							b.Fatal(err)
						}
					}
				}
				if _, err := w.Close(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*total)/time.Since(start).Seconds(), "rows/s")
		})
	}
}
