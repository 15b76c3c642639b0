package flightsink_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"

	"github.com/flightsink/flightsink/flightsink"
	"github.com/flightsink/flightsink/internal/ipcheader"
	"github.com/flightsink/flightsink/internal/kafkatest"
	"github.com/flightsink/flightsink/kafka"
)

// expandSchema has a buffer-backed id column and a column whose values cost
// the client almost nothing: run-end encoded or dictionary encoded.
func expandSchema(encoded arrow.DataType) *arrow.Schema {
	return arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "part", Type: arrow.PrimitiveTypes.Int32},
		{Name: "v", Type: encoded},
	}, nil)
}

var reeType = arrow.RunEndEncodedOf(arrow.PrimitiveTypes.Int32, arrow.BinaryTypes.String)
var dictType = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}

// expandingBatch is rows rows whose v is one of two long strings: run-end
// encoded (two runs) or dictionary encoded (two dictionary values). The
// last row's part is lastPart (-1 for null); every other part is null.
func expandingBatch(t testing.TB, encoded arrow.DataType, rows int, value func(i int) string, lastPart int32) arrow.RecordBatch {
	t.Helper()
	mem := memory.DefaultAllocator
	schema := expandSchema(encoded)
	ids := array.NewInt64Builder(mem)
	parts := array.NewInt32Builder(mem)
	for i := 0; i < rows; i++ {
		ids.Append(int64(i))
		if i == rows-1 && lastPart >= 0 {
			parts.Append(lastPart)
		} else {
			parts.AppendNull()
		}
	}
	var v arrow.Array
	switch dt := encoded.(type) {
	case *arrow.RunEndEncodedType:
		b := array.NewRunEndEncodedBuilder(mem, dt.RunEnds(), dt.Encoded())
		b.Append(uint64(rows / 2))
		b.ValueBuilder().(*array.StringBuilder).Append(value(0))
		b.Append(uint64(rows - rows/2))
		b.ValueBuilder().(*array.StringBuilder).Append(value(rows - 1))
		v = b.NewArray()
		b.Release()
	case *arrow.DictionaryType:
		b := array.NewDictionaryBuilder(mem, dt).(*array.BinaryDictionaryBuilder)
		for i := 0; i < rows; i++ {
			if err := b.AppendString(value(i)); err != nil {
				t.Fatal(err)
			}
		}
		v = b.NewArray()
		b.Release()
	}
	idArr, partArr := ids.NewArray(), parts.NewArray()
	ids.Release()
	parts.Release()
	defer idArr.Release()
	defer partArr.Release()
	defer v.Release()
	return array.NewRecordBatch(schema, []arrow.Array{idArr, partArr, v}, int64(rows))
}

func expandValue(i, rows int) string {
	if i < rows/2 {
		return strings.Repeat("a", 1000)
	}
	return strings.Repeat("b", 1000)
}

// TestExpandingBatchStreamsInChunks: a run-end encoded and a dictionary
// encoded batch of a few hundred KB of buffers expand into 20 MB of records,
// many times the stream's producer budget (2 MiB, chunks of 1 MiB): they are
// built and produced chunk by chunk, and every row is in Kafka, byte for
// byte, in both delivery modes.
func TestExpandingBatchStreamsInChunks(t *testing.T) {
	env := startServer(t, func(_ *flightsink.Config, k *kafka.Config) { k.MaxBufferedBytes = 2 << 20 })
	const rows = 20_000
	for _, encoded := range []arrow.DataType{reeType, dictType} {
		for _, delivery := range []string{"exactly_once", "at_least_once"} {
			t.Run(encoded.Name()+"/"+delivery, func(t *testing.T) {
				topic := kafkatest.TopicName(t)
				kafkatest.CreateTopic(t, env.brokers, topic, 3, nil)
				rec := expandingBatch(t, encoded, rows, func(i int) string { return expandValue(i, rows) }, -1)
				defer rec.Release()
				res := env.put(t, cmdDesc(map[string]any{"topic": topic, "delivery": delivery, "exclude_fields": []string{"part"}}),
					rec.Schema(), batchMeta(rec, checkpoint(1)))
				wantOK(t, res)
				got := kafkatest.ReadCommitted(t, env.brokers, topic)
				if len(got) != rows {
					t.Fatalf("%d records in Kafka, want %d", len(got), rows)
				}
				seen := make([]bool, rows)
				for _, r := range got {
					var id int
					if _, err := fmt.Sscanf(string(r.Value), `{"id":%d,`, &id); err != nil || id < 0 || id >= rows || seen[id] {
						t.Fatalf("unexpected record %.60q (%v)", r.Value, err)
					}
					seen[id] = true
					if want := fmt.Sprintf(`{"id":%d,"v":"%s"}`, id, expandValue(id, rows)); string(r.Value) != want {
						t.Fatalf("record %d is %.80q…, want %.80q…", id, r.Value, want)
					}
				}
			})
		}
	}
}

// TestBadRowInLastChunk: an at-least-once batch that expands into many
// chunks, or into two (whose second is kept rather than encoded again), is
// checked whole before any of it is produced: a bad row at its very end
// rejects it with nothing in Kafka. Exactly-once aborts instead. Without
// the bad row the two-chunk batch lands whole.
func TestBadRowInLastChunk(t *testing.T) {
	env := startServer(t, func(_ *flightsink.Config, k *kafka.Config) { k.MaxBufferedBytes = 2 << 20 })
	for _, tc := range []struct {
		delivery string
		rows     int
	}{{"at_least_once", 20_000}, {"exactly_once", 20_000}, {"at_least_once", 1_500}} {
		delivery, rows := tc.delivery, tc.rows
		t.Run(fmt.Sprintf("%s/%d", delivery, rows), func(t *testing.T) {
			topic := kafkatest.TopicName(t)
			kafkatest.CreateTopic(t, env.brokers, topic, 3, nil)
			rec := expandingBatch(t, reeType, rows, func(i int) string { return expandValue(i, rows) }, 7) // partition 7 of 3
			defer rec.Release()
			res := env.put(t, cmdDesc(map[string]any{"topic": topic, "delivery": delivery, "partition_field": "part"}),
				rec.Schema(), batchMeta(rec, checkpoint(1)))
			wantStatus(t, res, codes.InvalidArgument, "bad_row", fmt.Sprintf("stream row %d (batch 0, row %d)", rows-1, rows-1), `"part" is 7`)
			if n := len(kafkatest.ReadUncommitted(t, env.brokers, topic)); delivery == "at_least_once" && n != 0 {
				t.Fatalf("%d records of the rejected batch reached Kafka", n)
			}
			if n := len(kafkatest.ReadCommitted(t, env.brokers, topic)); n != 0 {
				t.Fatalf("%d records of the rejected batch are visible", n)
			}
		})
	}
	t.Run("at_least_once/1500/good", func(t *testing.T) {
		const rows = 1_500 // 1.5 MB of records: two chunks of 1 MiB
		topic := kafkatest.TopicName(t)
		kafkatest.CreateTopic(t, env.brokers, topic, 3, nil)
		rec := expandingBatch(t, reeType, rows, func(i int) string { return expandValue(i, rows) }, -1)
		defer rec.Release()
		wantOK(t, env.put(t, cmdDesc(map[string]any{"topic": topic, "delivery": "at_least_once", "exclude_fields": []string{"part"}}),
			rec.Schema(), batch(rec)))
		got := kafkatest.ReadCommitted(t, env.brokers, topic)
		seen := map[string]bool{}
		for _, r := range got {
			seen[string(r.Value)] = true
		}
		if len(got) != rows || len(seen) != rows {
			t.Fatalf("%d records (%d distinct), want %d", len(got), len(seen), rows)
		}
		for i := range rows {
			if want := fmt.Sprintf(`{"id":%d,"v":"%s"}`, i, expandValue(i, rows)); !seen[want] {
				t.Fatalf("row %d missing: %.80q…", i, want)
			}
		}
	})
}

// TestBatchRowLimit: a batch over flight.max_batch_rows is refused from its
// header, before it is decoded, whatever its encoding; nothing is produced
// and the server serves the next stream.
func TestBatchRowLimit(t *testing.T) {
	env := startServer(t, func(f *flightsink.Config, _ *kafka.Config) { f.MaxBatchRows = 5000 })
	for _, encoded := range []arrow.DataType{reeType, dictType} {
		t.Run(encoded.Name(), func(t *testing.T) {
			topic := kafkatest.TopicName(t)
			kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
			small := expandingBatch(t, encoded, 10, func(i int) string { return "x" }, -1)
			defer small.Release()
			big := expandingBatch(t, encoded, 20_000, func(i int) string { return expandValue(i, 20_000) }, -1)
			defer big.Release()
			for _, delivery := range []string{"exactly_once", "at_least_once"} {
				res := env.put(t, cmdDesc(map[string]any{"topic": topic, "delivery": delivery}), big.Schema(),
					batchMeta(small, checkpoint(1)), batch(big))
				wantStatus(t, res, codes.ResourceExhausted, "batch_too_large", "record batch 1 has 20000 rows, over flight.max_batch_rows (5000)")
			}
			// the first stream's checkpoint 1 committed; nothing of the big batch did
			if got := kafkatest.ReadUncommitted(t, env.brokers, topic); len(got) != 20 {
				t.Fatalf("%d records in Kafka, want the 2 × 10 of the small batches", len(got))
			}
			res := env.put(t, pathDesc(topic), small.Schema(), batch(small))
			wantOK(t, res)
		})
	}
}

// TestForgedUncompressedLength: a zstd body whose buffer declares 8 GB
// uncompressed is refused from its header before anything is allocated
// for it (arrow-go's reader would allocate the declared length).
func TestForgedUncompressedLength(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	rec := simpleBatch(0, 1000, -1, 0)
	defer rec.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(rec.Schema()), ipc.WithZstd())
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	w.Close()
	msgs, err := ipcheader.SplitStream(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Clone(msgs[1].Body)
	h, err := ipcheader.Read(msgs[1].Header, body)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range h.Buffers {
		if b.Length > 0 {
			binary.LittleEndian.PutUint64(body[b.Offset:], 8<<30) // each buffer declares 8 GB uncompressed
		}
	}
	if h, _ := ipcheader.Read(msgs[1].Header, body); h.DecodedBytes < 8<<30 {
		t.Fatalf("the forged body declares only %d bytes", h.DecodedBytes)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream, err := env.client.DoPut(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&flight.FlightData{FlightDescriptor: pathDesc(topic), DataHeader: msgs[0].Header}); err != nil {
		t.Fatal(err)
	}
	_ = stream.Send(&flight.FlightData{DataHeader: msgs[1].Header, DataBody: body})
	_ = stream.CloseSend()
	res := readResults(stream)
	wantStatus(t, res, codes.ResourceExhausted, "batch_too_large", "record batch 0 declares", "over flight.max_batch_bytes")
	if got := kafkatest.ReadUncommitted(t, env.brokers, topic); len(got) != 0 {
		t.Fatalf("%d records in Kafka", len(got))
	}
	if n := env.mem.CurrentAlloc(); n != 0 {
		t.Fatalf("%d bytes still allocated", n)
	}
}

// TestDictionaryDeltasBounded: dictionary deltas add up, and a client may
// send any number of them before the next record batch (where the batch's
// size check would count them; arrow-go's reader keeps every delta's body):
// their sum is checked message by message against flight.max_batch_bytes.
func TestDictionaryDeltasBounded(t *testing.T) {
	env := startServer(t, func(f *flightsink.Config, _ *kafka.Config) { f.MaxBatchBytes = 1 << 20 })
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	schema := arrow.NewSchema([]arrow.Field{{Name: "v", Type: dictType}}, nil)
	b := array.NewDictionaryBuilder(memory.DefaultAllocator, dictType).(*array.BinaryDictionaryBuilder)
	defer b.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema), ipc.WithDictionaryDeltas(true))
	for i := 0; i < 12; i++ { // 12 × 400 KB of new dictionary values, each batch sends a delta
		for j := 0; j < 4; j++ {
			if err := b.AppendString(fmt.Sprintf("%08d%s", i*4+j, strings.Repeat("z", 100_000))); err != nil {
				t.Fatal(err)
			}
		}
		arr := b.NewArray() // keeps the builder's dictionary: the next batch sends a delta
		rec := array.NewRecordBatch(schema, []arrow.Array{arr}, int64(arr.Len()))
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
		arr.Release()
	}
	w.Close()
	msgs, err := ipcheader.SplitStream(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream, err := env.client.DoPut(ctx)
	if err != nil {
		t.Fatal(err)
	}
	desc := cmdDesc(map[string]any{"topic": topic, "delivery": "at_least_once", "format": "raw_string"})
	_ = stream.Send(&flight.FlightData{FlightDescriptor: desc, DataHeader: msgs[0].Header})
	var dicts []ipcheader.Message
	for _, m := range msgs[1:] {
		if h, _ := ipcheader.Read(m.Header, m.Body); h.Kind == ipcheader.KindDictionaryBatch {
			dicts = append(dicts, m)
		}
	}
	if len(dicts) != 12 {
		t.Fatalf("%d dictionary messages, want 12", len(dicts))
	}
	for _, m := range dicts { // every dictionary message, no record batch
		if err := stream.Send(&flight.FlightData{DataHeader: m.Header, DataBody: m.Body}); err != nil {
			break // the server ended the stream: its status says why
		}
	}
	_ = stream.CloseSend()
	res := readResults(stream)
	wantStatus(t, res, codes.ResourceExhausted, "batch_too_large", "makes the stream's dictionaries", "over flight.max_batch_bytes (1048576)")
}

// TestRowExpansionRefusedBeforeEncoding: a list or list view of millions of
// booleans (a few hundred KB of bits), or views repeating one long string,
// would encode to many MB for one row; the row is refused before it is
// encoded, naming the row and max.message.bytes.
func TestRowExpansionRefusedBeforeEncoding(t *testing.T) {
	env := startServer(t)
	mem := memory.DefaultAllocator
	bits := memory.NewBufferBytes(make([]byte, 4_000_000/8)) // 4M false values
	bools := array.NewData(arrow.FixedWidthTypes.Boolean, 4_000_000, []*memory.Buffer{nil, bits}, nil, 0, 0)
	defer bools.Release()
	listOf := func(dt arrow.DataType, rows int, offsets, sizes []int32, child arrow.ArrayData) arrow.Array {
		bufs := []*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(offsets))}
		if sizes != nil {
			bufs = append(bufs, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(sizes)))
		}
		d := array.NewData(dt, rows, bufs, []arrow.ArrayData{child}, 0, 0)
		defer d.Release()
		return array.MakeFromData(d)
	}
	sv := array.NewStringViewBuilder(mem)
	long := strings.Repeat("v", 300_000)
	for i := 0; i < 10; i++ {
		sv.Append(long) // each view its own copy here; a client can point all at one
	}
	views := sv.NewArray()
	sv.Release()
	defer views.Release()
	for _, tc := range []struct {
		name string
		col  arrow.Array
		row  int
	}{
		// row 0: 10 booleans, row 1: the other 3,999,990
		{"list", listOf(arrow.ListOf(arrow.FixedWidthTypes.Boolean), 2, []int32{0, 10, 4_000_000}, nil, bools), 1},
		// every row views the same 2M booleans
		{"list_view", listOf(arrow.ListViewOf(arrow.FixedWidthTypes.Boolean), 3, []int32{0, 0, 0}, []int32{5, 2_000_000, 2_000_000}, bools), 1},
		// 10 × 300 KB in one list of views: 3 MB in one row
		{"list_of_views", listOf(arrow.ListOf(arrow.BinaryTypes.StringView), 1, []int32{0, 10}, nil, views.Data()), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.col.Release()
			topic := kafkatest.TopicName(t)
			kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
			schema := arrow.NewSchema([]arrow.Field{{Name: "l", Type: tc.col.DataType(), Nullable: true}}, nil)
			rec := array.NewRecordBatch(schema, []arrow.Array{tc.col}, int64(tc.col.Len()))
			defer rec.Release()
			res := env.put(t, cmdDesc(map[string]any{"topic": topic, "delivery": "at_least_once"}), schema, batch(rec))
			wantStatus(t, res, codes.InvalidArgument, "bad_row", fmt.Sprintf("stream row %d (batch 0, row %d)", tc.row, tc.row),
				"its lists have more elements, or its views more bytes")
			if n := len(kafkatest.ReadUncommitted(t, env.brokers, topic)); n != 0 {
				t.Fatalf("%d records in Kafka", n)
			}
		})
	}
}
