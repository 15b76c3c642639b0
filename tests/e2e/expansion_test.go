package e2e

import (
	"bytes"
	"context"
	binenc "encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcmd "google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/flightsink/flightsink/cmd/flightsink/config"
	"github.com/flightsink/flightsink/internal/ipcheader"
	"github.com/flightsink/flightsink/internal/kafkatest"
)

// The expansion test's settings. The server process runs under a hard
// memory limit far below what the batches expand into: a Go runtime that
// runs out of it dies with "fatal error: out of memory", which nothing
// recovers. The limit is on its data memory (ulimit -d: heap, stacks,
// every writable private mapping), not its address space (ulimit -v): the
// Go runtime reserves about 1.7 GiB of address space it never touches, so a
// -v limit measures reservations, not memory.
const (
	expDataKB        = 400_000 // ~390 MiB
	expRows          = 20_000
	expValueBytes    = 100_000 // 20,000 × 100 KB = 2 GB of record values, 5 × the limit
	expBufferedBytes = 16 << 20
	expMessageBytes  = 4 << 20
	expWindowBytes   = 1 << 20
)

// expBound is config.yaml's memory formula for one stream with these
// settings (uncompressed bodies: no decoded term).
func expBound() int64 {
	c := config.Default()
	c.Flight.MaxStreams = 1
	c.Kafka.MaxBufferedBytes = expBufferedBytes
	c.Flight.MaxMessageBytes = expMessageBytes
	c.Flight.ReceiveWindowBytes = expWindowBytes
	return config.MemoryBound(c, false)
}

// TestExpansionBounded: a least-privileged principal's run-end encoded and
// dictionary encoded batches (a few hundred KB each) expand into 2 GB of
// records each, five times the server's hard memory limit: they stream
// through in chunks, every row lands in Kafka, and the server's peak RSS
// stays within the documented bound. The same over flight.max_batch_rows,
// and a zstd body declaring 8 GB uncompressed, are ResourceExhausted with
// nothing produced. The server stays alive throughout.
func TestExpansionBounded(t *testing.T) {
	brokers := testBrokers(t)
	srv := startServer(t, serverConfig{brokers: brokers, replica: "expansion", prefix: uniquePrefix(t), dataKB: expDataKB,
		extra: []string{"--config", writeConfig(t, `
auth:
  tokens:
    - principal: loader
      token: {value: loader-token-0123456789}
  principals:
    - name: loader
      topics: ["expansion-*"]
`)},
		env: []string{
			fmt.Sprintf("FLIGHTSINK_KAFKA_MAX_BUFFERED_BYTES=%d", expBufferedBytes),
			fmt.Sprintf("FLIGHTSINK_FLIGHT_MAX_MESSAGE_BYTES=%d", expMessageBytes),
			fmt.Sprintf("FLIGHTSINK_FLIGHT_RECEIVE_WINDOW_BYTES=%d", expWindowBytes),
			"FLIGHTSINK_FLIGHT_MAX_BATCH_ROWS=100000",
			"FLIGHTSINK_KAFKA_COMPRESSION=zstd", // the broker's disk holds a few MB, not 4 GB
		}})
	conn, err := grpc.NewClient(srv.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := flight.NewFlightServiceClient(conn)
	halves := [2]string{"a" + strings.Repeat("x", expValueBytes-1), "b" + strings.Repeat("x", expValueBytes-1)}
	value := func(i int) string { return halves[min(i/(expRows/2), 1)] }

	began := time.Now()
	for _, tc := range []struct {
		name     string
		encoded  arrow.DataType
		delivery string
	}{
		{"run_end_encoded", arrow.RunEndEncodedOf(arrow.PrimitiveTypes.Int32, arrow.BinaryTypes.String), "at_least_once"},
		{"dictionary", &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}, "exactly_once"},
	} {
		topic := "expansion-" + tc.name + "-" + uniquePrefix(t)
		kafkatest.CreateTopic(t, brokers, topic, 2, nil)
		rec := twoValueBatch(t, tc.encoded, expRows, value)
		putStart := time.Now()
		res := rawPut(t, client, topic, tc.delivery, ipcMessages(t, rec, nil), nil)
		rec.Release()
		if res.err != nil {
			t.Fatalf("%s: %v", tc.name, res.err)
		}
		putTime, scanStart := time.Since(putStart), time.Now()
		seen := make([]bool, expRows)
		kafkatest.ScanCommitted(t, brokers, topic, func(r *kgo.Record) {
			var id int
			if _, err := fmt.Sscanf(string(r.Value[:20]), `{"id":%d,`, &id); err != nil {
				t.Fatalf("%s: record %.40q… has no id: %v", tc.name, r.Value, err)
			}
			head := fmt.Sprintf(`{"id":%d,"v":"`, id)
			v := value(id)
			if id < 0 || id >= expRows || seen[id] || len(r.Value) != len(head)+len(v)+2 ||
				string(r.Value[:len(head)]) != head || string(r.Value[len(head):len(head)+len(v)]) != v || string(r.Value[len(head)+len(v):]) != `"}` {
				t.Fatalf("%s: record %.40q… is not row %d, or a duplicate", tc.name, r.Value, id)
			}
			seen[id] = true
		})
		for id, ok := range seen {
			if !ok {
				t.Fatalf("%s: row %d is not in Kafka", tc.name, id)
			}
		}
		t.Logf("%s: %d rows → %.1f GB of records produced in %v, read back and checked in %v", tc.name, expRows,
			float64(expRows*expValueBytes)/1e9, putTime.Round(time.Millisecond), time.Since(scanStart).Round(time.Millisecond))
	}
	hwm := procStatus(srv.cmd.Process.Pid, "VmHWM")
	t.Logf("2 batches of %d rows expanded into %.1f GB of records each in %v; server peak RSS %d MiB (bound %d MiB, data memory limit %d MiB)",
		expRows, float64(expRows*expValueBytes)/1e9, time.Since(began).Round(time.Millisecond), hwm>>20, expBound()>>20, expDataKB>>10)
	if hwm == 0 || hwm > expBound() {
		t.Fatalf("server peak RSS %d MiB, bound %d MiB", hwm>>20, expBound()>>20)
	}

	// over flight.max_batch_rows: refused from the header, nothing produced
	topic := "expansion-rows-" + uniquePrefix(t)
	kafkatest.CreateTopic(t, brokers, topic, 1, nil)
	rec := twoValueBatch(t, arrow.RunEndEncodedOf(arrow.PrimitiveTypes.Int32, arrow.BinaryTypes.String), 200_000, value)
	res := rawPut(t, client, topic, "at_least_once", ipcMessages(t, rec, nil), nil)
	rec.Release()
	wantCode(t, res, codes.ResourceExhausted, "batch_too_large", "200000 rows, over flight.max_batch_rows (100000)")

	// a zstd body declaring 8 GB uncompressed: refused before it is allocated
	small := twoValueBatch(t, arrow.BinaryTypes.String, 1000, func(int) string { return "z" })
	res = rawPut(t, client, topic, "exactly_once", ipcMessages(t, small, []ipc.Option{ipc.WithZstd()}), func(h ipcheader.Header, body []byte) {
		for _, b := range h.Buffers {
			if b.Length > 0 {
				binenc.LittleEndian.PutUint64(body[b.Offset:], 8<<30)
			}
		}
	})
	wantCode(t, res, codes.ResourceExhausted, "batch_too_large", "declares", "over flight.max_batch_bytes")
	if n := kafkatest.CountCommitted(t, brokers, topic); n != 0 {
		t.Fatalf("%d records of refused batches in Kafka", n)
	}

	// one row: a list of 200M booleans, 25 MB of bits that zstd sends in a few KB and that encode to
	// 1.2 GB of JSON: refused before it is encoded
	bits := memory.NewBufferBytes(make([]byte, 200_000_000/8))
	boolData := array.NewData(arrow.FixedWidthTypes.Boolean, 200_000_000, []*memory.Buffer{nil, bits}, nil, 0, 0)
	listData := array.NewData(arrow.ListOf(arrow.FixedWidthTypes.Boolean), 1,
		[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes([]int32{0, 200_000_000}))},
		[]arrow.ArrayData{boolData}, 0, 0)
	lists := array.MakeFromData(listData)
	listRec := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "l", Type: lists.DataType(), Nullable: true}}, nil),
		[]arrow.Array{lists}, 1)
	res = rawPut(t, client, topic, "exactly_once", ipcMessages(t, listRec, []ipc.Option{ipc.WithZstd()}), nil)
	listRec.Release()
	lists.Release()
	listData.Release()
	boolData.Release()
	wantCode(t, res, codes.InvalidArgument, "bad_row", "stream row 0 (batch 0, row 0)", "its lists have more elements")

	// still serving
	res = rawPut(t, client, topic, "exactly_once", ipcMessages(t, small, nil), nil)
	small.Release()
	if res.err != nil {
		t.Fatalf("the stream after the refused ones: %v", res.err)
	}
	if n := kafkatest.CountCommitted(t, brokers, topic); n != 1000 {
		t.Fatalf("%d records in Kafka, want 1000", n)
	}
	select {
	case <-srv.done:
		t.Fatalf("the server exited:\n%s", srv.log())
	default:
	}
}

// twoValueBatch is rows rows of (id, v): v is value(i) encoded as
// encoded, which is run-end encoded, dictionary or plain string. value
// must have two values, one for each half of the rows.
func twoValueBatch(t *testing.T, encoded arrow.DataType, rows int, value func(i int) string) arrow.RecordBatch {
	t.Helper()
	mem := memory.DefaultAllocator
	ids := array.NewInt64Builder(mem)
	defer ids.Release()
	for i := 0; i < rows; i++ {
		ids.Append(int64(i))
	}
	var v arrow.Array
	switch dt := encoded.(type) {
	case *arrow.RunEndEncodedType: // two runs: value(0) for the first half, value(rows-1) for the rest
		b := array.NewRunEndEncodedBuilder(mem, dt.RunEnds(), dt.Encoded())
		defer b.Release()
		b.Append(uint64(rows / 2))
		b.ValueBuilder().(*array.StringBuilder).Append(value(0))
		b.Append(uint64(rows - rows/2))
		b.ValueBuilder().(*array.StringBuilder).Append(value(rows - 1))
		v = b.NewArray()
	case *arrow.DictionaryType:
		b := array.NewDictionaryBuilder(mem, dt).(*array.BinaryDictionaryBuilder)
		defer b.Release()
		for i := 0; i < rows; i++ {
			if err := b.AppendString(value(i)); err != nil {
				t.Fatal(err)
			}
		}
		v = b.NewArray()
	default:
		b := array.NewStringBuilder(mem)
		defer b.Release()
		for i := 0; i < rows; i++ {
			b.Append(value(i))
		}
		v = b.NewArray()
	}
	defer v.Release()
	idArr := ids.NewArray()
	defer idArr.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "v", Type: encoded}}, nil)
	return array.NewRecordBatch(schema, []arrow.Array{idArr, v}, int64(rows))
}

// ipcMessages is rec as the messages of an IPC stream.
func ipcMessages(t *testing.T, rec arrow.RecordBatch, opts []ipc.Option) []ipcheader.Message {
	t.Helper()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, append([]ipc.Option{ipc.WithSchema(rec.Schema())}, opts...)...)
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	w.Close()
	msgs, err := ipcheader.SplitStream(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

type rawResult struct {
	err    error
	reason string
}

// rawPut sends msgs as one DoPut of the principal "loader" with a
// checkpoint on the last, closes, and reads to the end. forge may alter the
// record batches' bodies first.
func rawPut(t *testing.T, client flight.FlightServiceClient, topic, delivery string, msgs []ipcheader.Message, forge func(ipcheader.Header, []byte)) rawResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ctx = grpcmd.AppendToOutgoingContext(ctx, "authorization", "Bearer loader-token-0123456789")
	stream, err := client.DoPut(ctx)
	if err != nil {
		t.Fatal(err)
	}
	desc := &flight.FlightDescriptor{Type: flight.DescriptorCMD,
		Cmd: []byte(fmt.Sprintf(`{"topic":%q,"delivery":%q}`, topic, delivery))}
	for i, m := range msgs {
		fd := &flight.FlightData{DataHeader: m.Header, DataBody: m.Body}
		if i == 0 {
			fd.FlightDescriptor = desc
		}
		if h, _ := ipcheader.Read(m.Header, m.Body); h.Kind == ipcheader.KindRecordBatch {
			fd.AppMetadata = []byte(`{"checkpoint":1}`)
			if forge != nil {
				fd.DataBody = bytes.Clone(m.Body)
				forge(h, fd.DataBody)
			}
		}
		if err := stream.Send(fd); err != nil {
			break // the server ended the stream; its status says why
		}
	}
	_ = stream.CloseSend()
	for {
		if _, err := stream.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return rawResult{}
			}
			var reason string
			if v := stream.Trailer().Get("flightsink-reason"); len(v) > 0 {
				reason = v[0]
			}
			return rawResult{err: err, reason: reason}
		}
	}
}

func wantCode(t *testing.T, res rawResult, code codes.Code, reason string, fragments ...string) {
	t.Helper()
	st := status.Convert(res.err)
	if res.err == nil || st.Code() != code || res.reason != reason {
		t.Fatalf("got %v (reason %q), want %v %s", res.err, res.reason, code, reason)
	}
	for _, f := range fragments {
		if !strings.Contains(st.Message(), f) {
			t.Fatalf("message %q does not mention %q", st.Message(), f)
		}
	}
}
