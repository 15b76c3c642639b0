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
	const chunk = 1 << 20            // 5,000 rows of ~215 bytes + 160 per record: a full chunk and a rest
	pool := NewRecordPool(4 * chunk) // as a stream's: kafka.max_buffered_bytes (3 chunks here) and a chunk
	p.UsePool(pool)
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
				t.Fatalf("a chunk was encoded into a new buffer after warming up: the pool dropped a chunk or handed the rest's small buffer to a full chunk")
			}
		}
	}
	if allocs := testing.AllocsPerRun(5, func() { encodeAll() }); allocs > 10 {
		t.Fatalf("encoding a warm batch allocated %.0f times, want no buffers (the map of this test aside)", allocs)
	}
	if pool.outstanding != 0 || pool.bytes > pool.maxBytes {
		t.Fatalf("with every batch back: %d bytes counted as handed out, %d kept (at most %d)", pool.outstanding, pool.bytes, pool.maxBytes)
	}
}

// TestRecordPoolBound: the batches a pool hands out and keeps stay within
// its bound together: one coming back while others are out is kept only
// if it fits beside them.
func TestRecordPoolBound(t *testing.T) {
	pool := NewRecordPool(3 << 20)
	batch := func() *Records {
		b := pool.get(1 << 20)
		if cap(b.buf) < 1<<20 {
			b.buf = make([]byte, 0, 1<<20)
		}
		pool.track(b)
		return b
	}
	a, b, c := batch(), batch(), batch()
	if pool.outstanding != 3<<20 {
		t.Fatalf("three 1 MiB batches out: %d bytes counted", pool.outstanding)
	}
	d := batch() // a fourth in use: over the bound, the pool cannot help that
	a.Recycle()
	if len(pool.free) != 0 {
		t.Fatal("a batch came back while three others (3 MiB) are out: the pool kept it beyond its 3 MiB")
	}
	b.Recycle()
	c.Recycle()
	if len(pool.free) != 2 || pool.bytes+pool.outstanding > pool.maxBytes {
		t.Fatalf("kept %d batches (%d bytes) beside %d out, bound %d", len(pool.free), pool.bytes, pool.outstanding, pool.maxBytes)
	}
	d.Recycle()
	if len(pool.free) != 3 {
		t.Fatalf("kept %d batches with nothing out, want 3 (the first was dropped while the pool was full)", len(pool.free))
	}
	if e := batch(); cap(e.buf) != 1<<20 || len(pool.free) != 2 || pool.outstanding != 1<<20 {
		t.Fatalf("a reused batch: cap %d, %d left, %d out", cap(e.buf), len(pool.free), pool.outstanding)
	}
}
