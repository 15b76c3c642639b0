// Command limit is contender L of the benchmark: the dataset's rows,
// turned into record values, keys and timestamps by flightsink's own
// encoder BEFORE the timed window, then written by one franz-go producer
// with flightsink's producer settings (idempotent, acks=all, linger 5ms,
// kafka.compression (snappy), 1 MB batches, 64 MiB buffered; see kafka/config.go and
// kafka/sink.go). No Flight, no serialization: what Kafka on this machine
// takes from a Go producer.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flightsink/flightsink/bench/internal/benchdata"
	"github.com/flightsink/flightsink/kafka"
	"github.com/flightsink/flightsink/kafka/encode"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "limit:", err)
		os.Exit(1)
	}
}

func run() error {
	data := flag.String("data", "", "dataset file (Arrow IPC) written by benchrun")
	brokers := flag.String("brokers", "", "Kafka brokers host:port[,...]")
	topic := flag.String("topic", "", "topic to write")
	watch := flag.String("watch", "", "processes whose CPU to measure over the timed window: name=pid,...")
	name := flag.String("name", "L", "contender name in the result")
	timeout := flag.Duration("timeout", 30*time.Minute, "give up after this long")
	compression := flag.String("compression", kafka.DefaultConfig().Compression, "kafka.compression of the flightsink servers it is compared with")
	flag.Parse()
	if *data == "" || *brokers == "" || *topic == "" {
		return fmt.Errorf("--data, --brokers and --topic are required")
	}
	w, err := benchdata.ParseWatch(*watch)
	if err != nil {
		return err
	}
	meta, err := benchdata.ReadMeta(*data)
	if err != nil {
		return err
	}

	// ---- untimed: read the dataset and serialize every row
	schema, batches, err := benchdata.Load(*data)
	if err != nil {
		return err
	}
	enc, err := encode.NewJSON(schema)
	if err != nil {
		return err
	}
	key, err := encode.NewKey(schema, meta.KeyField)
	if err != nil {
		return err
	}
	ts, err := encode.NewTimestamp(schema, meta.TimestampField)
	if err != nil {
		return err
	}
	n := int(meta.Rows)
	// one big pointer-free buffer each: the garbage collector never scans them
	values := make([]byte, 0, meta.ValueBytes)
	keys := make([]byte, 0, meta.KeyBytes)
	valueEnd := make([]int64, n)
	keyEnd := make([]int64, n) // -1-start: null key
	millis := make([]int64, n) // -1: no timestamp
	row := 0
	for _, rec := range batches {
		if err := enc.Bind(rec); err != nil {
			return err
		}
		key.Bind(rec)
		ts.Bind(rec)
		for i := 0; i < int(rec.NumRows()); i++ {
			values = enc.AppendRow(values, i)
			valueEnd[row] = int64(len(values))
			ks := len(keys)
			var ok bool
			keys, ok = key.AppendKey(keys, i)
			keyEnd[row] = int64(len(keys))
			if !ok {
				keyEnd[row] = int64(-1 - ks)
			}
			millis[row] = -1
			if ms, ok := ts.Millis(i); ok {
				millis[row] = ms
			}
			row++
		}
		rec.Release()
	}
	if row != n || int64(len(values)) != meta.ValueBytes {
		return fmt.Errorf("dataset has %d rows / %d value bytes, its metadata says %d / %d", row, len(values), n, meta.ValueBytes)
	}

	// flightsink's shared at-least-once producer: kafka.NewSink's
	// producerOpts + RequiredAcks(AllISRAcks()), idempotent by kgo default.
	var (
		failed   atomic.Int64
		firstErr error
		errOnce  sync.Once
	)
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.Add(1)
			errOnce.Do(func() { firstErr = err })
		}
	}
	def := kafka.DefaultConfig()
	def.Compression = *compression
	codec, err := def.CompressionCodec()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(*brokers, ",")...),
		kgo.ClientID("bench-limit"),
		kgo.ProducerLinger(def.Linger),
		kgo.ProducerBatchCompression(codec),
		kgo.ProducerBatchMaxBytes(def.BatchMaxBytes),
		kgo.MaxBufferedRecords(1<<30),
		kgo.MaxBufferedBytes(def.MaxBufferedBytes),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	runtime.GC()
	debug.FreeOSMemory()

	// ---- timed
	if err := w.Start(); err != nil {
		return err
	}
	cpu0 := benchdata.SelfCPU()
	t0 := time.Now()
	const chunk = 10_000 // records are allocated per chunk, as flightsink does per batch
	var recs []kgo.Record
	var vstart, kstart int64
	for i := 0; i < n; i++ {
		if i%chunk == 0 {
			recs = make([]kgo.Record, min(chunk, n-i))
		}
		r := &recs[i%chunk]
		r.Topic = *topic
		r.Value = values[vstart:valueEnd[i]:valueEnd[i]]
		vstart = valueEnd[i]
		if e := keyEnd[i]; e >= 0 {
			r.Key = keys[kstart:e:e]
			kstart = e
		} else {
			kstart = -1 - e
		}
		if ms := millis[i]; ms >= 0 {
			r.Timestamp = time.UnixMilli(ms)
		}
		cl.Produce(ctx, r, promise)
	}
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	elapsed := time.Since(t0)
	cpu := benchdata.SelfCPU() - cpu0
	watched, err := w.Stop()
	if err != nil {
		return err
	}
	// ---- end of timed window
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("%d records failed; first: %v", f, firstErr)
	}
	benchdata.Result{Contender: *name, Rows: int64(n), ValueBytes: meta.ValueBytes, Seconds: elapsed.Seconds(),
		ClientCPU: cpu, Watched: watched}.Print()
	return nil
}
