package flightsink

import (
	"fmt"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"

	"github.com/flightsink/flightsink/internal/ipcheader"
)

// batchLimits checks what a record batch or dictionary message declares
// (ipcheader) against flight.max_batch_rows and flight.max_batch_bytes
// before the IPC reader decodes it, so a header cannot make the server
// allocate what a limit refuses: the rows of a run-end encoded column or
// the declared uncompressed size of a zstd buffer cost the client a few
// bytes each.
type batchLimits struct {
	maxRows  int64
	maxBytes int64
	schema   *arrow.Schema // set once the stream's schema is read
	free     []bool        // per IPC node of a record batch: its length costs nothing (null, run-end encoded)
	// dicts is the decoded size of each dictionary the reader holds: a
	// delta adds to it, a replacement resets it. Any number of dictionary
	// messages may come before the next record batch, and the reader keeps
	// each delta's body, so their sum is checked here, message by message.
	dicts map[int64]int64
}

// check refuses a message whose declarations exceed the limits. batch is
// the number the next record batch will have.
func (l *batchLimits) check(h ipcheader.Header, batch int64) error {
	what := fmt.Sprintf("record batch %d", batch)
	if h.Kind == ipcheader.KindDictionaryBatch {
		what = fmt.Sprintf("the dictionary batch (id %d) before record batch %d", h.DictionaryID, batch)
	}
	if h.DecodedBytes > l.maxBytes {
		return newError(codes.ResourceExhausted, ReasonBatchTooLarge,
			"%s declares %d bytes once decoded, over flight.max_batch_bytes (%d); send smaller batches", what, h.DecodedBytes, l.maxBytes)
	}
	if h.Rows > l.maxRows {
		return newError(codes.ResourceExhausted, ReasonBatchTooLarge,
			"%s has %d rows, over flight.max_batch_rows (%d); send smaller batches", what, h.Rows, l.maxRows)
	}
	if h.Kind == ipcheader.KindDictionaryBatch {
		if l.dicts == nil {
			l.dicts = map[int64]int64{}
		}
		if !h.IsDelta {
			l.dicts[h.DictionaryID] = 0
		}
		l.dicts[h.DictionaryID] += h.DecodedBytes
		var total int64
		for _, n := range l.dicts {
			total += n
		}
		if total > l.maxBytes {
			return newError(codes.ResourceExhausted, ReasonBatchTooLarge,
				"%s makes the stream's dictionaries %d bytes once decoded, over flight.max_batch_bytes (%d); send smaller dictionaries or fewer deltas",
				what, total, l.maxBytes)
		}
	}
	if h.Kind == ipcheader.KindRecordBatch && l.schema != nil && l.free == nil {
		l.free = freeNodes(l.schema)
	}
	for i, n := range h.Nodes {
		// A dictionary's arrays are checked all alike: their types are
		// the dictionaries', not the schema's.
		free := h.Kind == ipcheader.KindDictionaryBatch || i < len(l.free) && l.free[i]
		if free && n > l.maxRows {
			return newError(codes.ResourceExhausted, ReasonBatchTooLarge,
				"%s declares an array of %d values (IPC field node %d), over flight.max_batch_rows (%d); send smaller batches",
				what, n, i, l.maxRows)
		}
	}
	return nil
}

// freeNodes says, for each IPC field node of a record batch of schema (the
// pre-order of its fields and their children), whether the node's length
// is free: not backed by buffers of at least a bit per value, so only
// max_batch_rows bounds what it expands into.
func freeNodes(schema *arrow.Schema) []bool {
	var out []bool
	var walk func(dt arrow.DataType)
	walk = func(dt arrow.DataType) {
		if ext, ok := dt.(arrow.ExtensionType); ok {
			dt = ext.StorageType()
		}
		switch dt.ID() {
		case arrow.NULL, arrow.RUN_END_ENCODED:
			out = append(out, true)
		default:
			out = append(out, false)
		}
		if dt.ID() == arrow.DICTIONARY { // the node is the indices; the values come in dictionary batches
			return
		}
		if nested, ok := dt.(arrow.NestedType); ok {
			for _, f := range nested.Fields() {
				walk(f.Type)
			}
		}
	}
	for _, f := range schema.Fields() {
		walk(f.Type)
	}
	return out
}

// boundedAllocator is one stream's allocator for decoding Arrow IPC: it
// refuses (by panicking, which the IPC reader turns into its error) to hold
// more than limit bytes at once. It backs the checks of batchLimits: what a
// header declares is checked before decoding, this bounds what decoding
// really allocates (decompressed buffers, concatenated dictionary deltas).
type boundedAllocator struct {
	mem   memory.Allocator
	limit int64

	mu   sync.Mutex
	used int64
}

func newBoundedAllocator(mem memory.Allocator, limit int64) *boundedAllocator {
	return &boundedAllocator{mem: mem, limit: limit}
}

func (a *boundedAllocator) reserve(n int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.used+n > a.limit {
		// arrow-go's IPC reader recovers the panic and returns this
		// *Error wrapped as its own error.
		panic(newError(codes.ResourceExhausted, ReasonBatchTooLarge,
			"decoding the stream's record batches and dictionaries would hold %d bytes, over 2 × flight.max_batch_bytes (%d); send smaller batches or dictionaries",
			a.used+n, a.limit))
	}
	a.used += n
}

func (a *boundedAllocator) unreserve(n int64) {
	a.mu.Lock()
	a.used -= n
	a.mu.Unlock()
}

// Allocate implements memory.Allocator.
func (a *boundedAllocator) Allocate(size int) []byte {
	a.reserve(int64(size))
	return a.mem.Allocate(size)
}

// Reallocate implements memory.Allocator.
func (a *boundedAllocator) Reallocate(size int, b []byte) []byte {
	if grow := int64(size) - int64(len(b)); grow > 0 {
		a.reserve(grow)
	} else {
		a.unreserve(-grow)
	}
	return a.mem.Reallocate(size, b)
}

// Free implements memory.Allocator.
func (a *boundedAllocator) Free(b []byte) {
	a.unreserve(int64(len(b)))
	a.mem.Free(b)
}
