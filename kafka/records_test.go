package kafka

import (
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestRecordPoolReusesFullChunks: a full chunk's buffers are a little over
// the chunk size the pool's share equals, and a batch bigger than a chunk
// alternates a full chunk with its rest. Both must be encoded into reused
// memory once warm, or every chunk is allocated, zeroed and page-faulted
// afresh (the wide benchmark spent 7% of the server's CPU there).
func TestRecordPoolReusesFullChunks(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "s", Type: arrow.BinaryTypes.String}}, nil)
	bld := array.NewRecordBuilder(mem, schema)
	pad := strings.Repeat("x", 200)
	for i := range 5_000 {
		bld.Field(0).(*array.Int64Builder).Append(int64(i))
		bld.Field(1).(*array.StringBuilder).Append(pad)
	}
	rec := bld.NewRecordBatch()
	bld.Release()
	defer rec.Release()
	info := TopicInfo{Topic: "t", Partitions: 1, MaxMessageBytes: 1 << 20, TimestampBeforeMax: 1<<63 - 1, TimestampAfterMax: 1<<63 - 1}
	p, err := NewPlan(schema, &RecordOptions{Topic: "t", Format: FormatJSON}, info, nil)
	if err != nil {
		t.Fatal(err)
	}
	const chunk = 1 << 20 // 5,000 rows of ~215 bytes + 160 per record: a full chunk and a rest
	p.UsePool(NewRecordPool(chunk))
	p.SetChunkBytes(chunk)
	encodeAll := func() (chunks int, bufs map[*byte]bool) {
		bufs = map[*byte]bool{}
		if err := p.Bind(rec); err != nil {
			t.Fatal(err)
		}
		var inFlight []*Records
		for from := 0; from < int(rec.NumRows()); chunks++ {
			out, next, err := p.Encode(int(rec.NumRows()), from, 0, 1, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			r := out.(*Records)
			bufs[&r.buf[:1][0]] = true
			inFlight = append(inFlight, r)
			from = next
		}
		for _, r := range inFlight { // acknowledged together, as Kafka does
			r.Recycle()
		}
		return chunks, bufs
	}
	encodeAll() // warm up: sizes the buffers
	_, warm := encodeAll()
	for range 3 {
		chunks, bufs := encodeAll()
		if chunks < 2 {
			t.Fatalf("the batch was encoded in %d chunk(s), want a full chunk and a rest", chunks)
		}
		for b := range bufs {
			if !warm[b] {
				t.Fatalf("a chunk was encoded into a new buffer after warming up: the pool dropped a full chunk (footprint over its %d bytes) or handed the rest's small buffer to a full chunk", chunk)
			}
		}
	}
	if allocs := testing.AllocsPerRun(5, func() { encodeAll() }); allocs > 10 {
		t.Fatalf("encoding a warm batch allocated %.0f times, want no buffers (the map of this test aside)", allocs)
	}
}
