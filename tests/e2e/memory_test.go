package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	client "github.com/flightsink/flightsink/clients/go/fsclient"
	"github.com/flightsink/flightsink/cmd/flightsink/config"
	"github.com/flightsink/flightsink/internal/kafkatest"
)

// The memory test's settings, and the bound they imply: each stream holds
// at most kafka.max_buffered_bytes of unacknowledged records, plus the batch
// being decoded and encoded and the one being received (each at most
// flight.max_message_bytes as Arrow, its JSON about as large again), and
// what the client sent ahead (flight.receive_window_bytes). Go's
// collector lets the heap grow to twice the live data before it collects
// (GOGC=100), hence the factor 2; the rest is the Go runtime, gRPC and the
// Kafka clients. (GOMEMLIMIT tightens this in production.)
const (
	memWriters       = 16
	memBufferedBytes = 4 << 20
	memMessageBytes  = 1 << 20
	memWindowBytes   = 1 << 20
)

// memBound is config.yaml's memory formula for these settings, with every
// stream writing (uncompressed bodies).
var memBound = func() int64 {
	c := config.Default()
	c.Flight.MaxStreams = memWriters
	c.Kafka.MaxBufferedBytes = memBufferedBytes
	c.Flight.MaxMessageBytes = memMessageBytes
	c.Flight.ReceiveWindowBytes = memWindowBytes
	return config.MemoryBound(c, false)
}()

var blobSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "payload", Type: arrow.BinaryTypes.String},
}, nil)

// TestMemoryBoundedUnderLoad: 16 concurrent writers push 512 MB of Arrow
// data through a server process (no -race); back-pressure from the per-stream
// producer buffer keeps the server's peak RSS under the bound derived from
// the configured buffers, far below the data volume.
func TestMemoryBoundedUnderLoad(t *testing.T) {
	brokers := testBrokers(t)
	total := int64(512 << 20)
	if v := os.Getenv("FLIGHTSINK_MEMTEST_BYTES"); v != "" {
		total, _ = strconv.ParseInt(v, 10, 64)
	}
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, brokers, topic, 4, nil)
	srv := startServer(t, serverConfig{brokers: brokers, replica: "memory", prefix: uniquePrefix(t), env: []string{
		fmt.Sprintf("FLIGHTSINK_KAFKA_MAX_BUFFERED_BYTES=%d", memBufferedBytes),
		fmt.Sprintf("FLIGHTSINK_FLIGHT_MAX_MESSAGE_BYTES=%d", memMessageBytes),
		fmt.Sprintf("FLIGHTSINK_FLIGHT_RECEIVE_WINDOW_BYTES=%d", memWindowBytes),
	}})

	// One 512 KiB batch (1 KiB rows of random text, so compression does not
	// shrink the load), sent over and over by every writer.
	const rowBytes, rowsPerBatch = 1024, 512
	b := array.NewRecordBuilder(memory.DefaultAllocator, blobSchema)
	rnd := rand.New(rand.NewPCG(1, 2))
	raw := make([]byte, (rowBytes-16)*3/4)
	for i := 0; i < rowsPerBatch; i++ {
		for j := range raw {
			raw[j] = byte(rnd.Uint32())
		}
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		b.Field(1).(*array.StringBuilder).Append(base64.StdEncoding.EncodeToString(raw))
	}
	rec := b.NewRecordBatch()
	b.Release()
	defer rec.Release()
	batchBytes := int64(rowsPerBatch * rowBytes)
	perWriter := total / memWriters / batchBytes

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	peak := make(chan int64, 1)
	stop := make(chan struct{})
	go func() { // VmHWM is the peak; sampling VmRSS too shows the curve in the log
		var max int64
		for {
			select {
			case <-stop:
				peak <- max
				return
			case <-time.After(100 * time.Millisecond):
				if v := procStatus(srv.cmd.Process.Pid, "VmHWM"); v > max {
					max = v
				}
			}
		}
	}()
	began := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, memWriters)
	for w := 0; w < memWriters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := client.Dial(srv.addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			wr, err := c.Open(ctx, client.Descriptor{Topic: topic, Delivery: "exactly_once"}, blobSchema)
			if err != nil {
				errs <- err
				return
			}
			for i := int64(0); i < perWriter; i++ {
				if err := wr.Write(rec); err != nil {
					errs <- err
					return
				}
				if (i+1)%32 == 0 { // a checkpoint every 16 MiB
					if _, err := wr.Checkpoint(ctx); err != nil {
						errs <- err
						return
					}
				}
			}
			if _, err := wr.Close(ctx); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(stop)
	hwm := <-peak
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	sent := perWriter * memWriters * batchBytes
	t.Logf("%d writers sent %d MiB of Arrow data in %v; server peak RSS %d MiB; bound (the memory formula) %d MiB = 128 MiB + 2 × %d × (1.25 × %d MiB buffered + %d MiB window + 3 × %d MiB messages)",
		memWriters, sent>>20, time.Since(began).Round(time.Millisecond), hwm>>20, memBound>>20,
		memWriters, memBufferedBytes>>20, memWindowBytes>>20, memMessageBytes>>20)
	if hwm == 0 {
		t.Fatal("could not read the server's peak RSS")
	}
	if hwm > memBound {
		t.Fatalf("server peak RSS %d MiB exceeds the bound %d MiB", hwm>>20, memBound>>20)
	}
	if got := kafkatest.CountCommitted(t, brokers, topic); got != perWriter*memWriters*rowsPerBatch {
		t.Fatalf("%d records in the topic, want %d", got, perWriter*memWriters*rowsPerBatch)
	}
}

// procStatus reads a "kB" field of /proc/PID/status, in bytes.
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
