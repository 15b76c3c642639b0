package kafka

import (
	"sync"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Records is one record batch turned into Kafka records. The records
// point into buffers owned by this value; they stay untouched until Kafka
// acknowledges them.
type Records struct {
	records []kgo.Record
	buf     []byte
	headers []kgo.RecordHeader
	pool    *RecordPool // where the batch goes once Kafka has acknowledged it
	counted int         // its footprint as the pool last counted it
	// rejected are the rows left out under a bad-row policy other than fail
	rejected []RowError
}

// Rejected implements sinkapi.Chunk.
func (b *Records) Rejected() []RowError { return b.rejected }

// Recycle returns a batch its holder no longer needs to its pool (a
// Writer does so once Kafka acknowledged it).
func (b *Records) Recycle() { b.pool.put(b) }

// Len is the number of records.
func (b *Records) Len() int { return len(b.records) }

// Bytes is the size of the records' keys, values and headers.
func (b *Records) Bytes() int { return len(b.buf) }

// acked is what a Writer calls once every record is acknowledged.
func (b *Records) acked() func() {
	if b.pool == nil {
		return nil
	}
	return b.Recycle
}

// footprint is the memory the batch's slices hold.
func (b *Records) footprint() int {
	return cap(b.buf) + cap(b.records)*int(unsafe.Sizeof(kgo.Record{})) + cap(b.headers)*int(unsafe.Sizeof(kgo.RecordHeader{}))
}

// RecordPool keeps acknowledged batches for the next ones to encode into:
// a stream then reuses its record slices and value buffers instead of
// allocating (zeroing, page-faulting, and the GC collecting) them per
// batch. It bounds the memory of all its batches together, those handed
// out (being built, held, in flight) and those kept: a batch coming back is
// kept while both add up to at most maxBytes (kafka.max_buffered_bytes and
// a chunk), so a stream reuses as many batches as it has in use, which is
// what its producer buffer allows anyway, and never holds more memory than
// without the pool. Safe for concurrent use: producer goroutines put, the
// read loop gets.
type RecordPool struct {
	mu          sync.Mutex
	free        []*Records
	bytes       int // footprint of free
	outstanding int // footprint of the batches handed out (as last tracked)
	maxBytes    int
}

// NewRecordPool bounds the batches handed out and kept to maxBytes.
func NewRecordPool(maxBytes int) *RecordPool { return &RecordPool{maxBytes: maxBytes} }

// get returns a pooled batch, or a new empty one: the most recent one
// whose buffer holds wantBuf bytes, else the one with the largest buffer
// (chunks of one stream alternate between sizes: a batch larger than a
// chunk is a full chunk and a rest).
func (bp *RecordPool) get(wantBuf int) *Records {
	if bp == nil {
		return &Records{}
	}
	bp.mu.Lock()
	defer bp.mu.Unlock()
	n := len(bp.free)
	if n == 0 {
		return &Records{pool: bp}
	}
	pick := n - 1
	for i := n - 1; i >= 0; i-- {
		if c := cap(bp.free[i].buf); c >= wantBuf {
			pick = i
			break
		} else if c > cap(bp.free[pick].buf) {
			pick = i
		}
	}
	b := bp.free[pick]
	copy(bp.free[pick:], bp.free[pick+1:])
	bp.free[n-1] = nil
	bp.free = bp.free[:n-1]
	bp.bytes -= b.counted
	bp.outstanding += b.counted
	return b
}

// track counts b's footprint, which grows while it is built, as handed
// out.
func (bp *RecordPool) track(b *Records) {
	if bp == nil {
		return
	}
	size := b.footprint()
	bp.mu.Lock()
	bp.outstanding += size - b.counted
	b.counted = size
	bp.mu.Unlock()
}

// put keeps b for reuse if the pool's batches stay within maxBytes;
// otherwise the GC takes it.
func (bp *RecordPool) put(b *Records) {
	if bp == nil {
		return
	}
	size := b.footprint()
	bp.mu.Lock()
	defer bp.mu.Unlock()
	bp.outstanding -= b.counted
	if bp.bytes+bp.outstanding+size <= bp.maxBytes {
		bp.free = append(bp.free, b)
		bp.bytes += size
		b.counted = size
	}
}

// Size is what the batch's records count against kafka.max_buffered_bytes
// (RecordSize of each): what a caller holding them counts against a
// Writer's Backlog.
func (b *Records) Size() int {
	n := 0
	for i := range b.records {
		n += RecordSize(&b.records[i])
	}
	return n
}
