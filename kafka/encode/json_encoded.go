package encode

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// indexType lists the integer types Arrow allows as dictionary indices.
type indexType interface {
	int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64
}

func newDictionaryEncoder(dt *arrow.DictionaryType, path string, o *JSONOptions) (valueEncoder, error) {
	vals, err := newValueEncoder(dt.ValueType, path, o)
	if err != nil {
		return nil, err
	}
	switch dt.IndexType.ID() {
	case arrow.INT8:
		return &dictionaryEncoder[int8]{vals: vals}, nil
	case arrow.INT16:
		return &dictionaryEncoder[int16]{vals: vals}, nil
	case arrow.INT32:
		return &dictionaryEncoder[int32]{vals: vals}, nil
	case arrow.INT64:
		return &dictionaryEncoder[int64]{vals: vals}, nil
	case arrow.UINT8:
		return &dictionaryEncoder[uint8]{vals: vals}, nil
	case arrow.UINT16:
		return &dictionaryEncoder[uint16]{vals: vals}, nil
	case arrow.UINT32:
		return &dictionaryEncoder[uint32]{vals: vals}, nil
	case arrow.UINT64:
		return &dictionaryEncoder[uint64]{vals: vals}, nil
	}
	return nil, unsupported(path, dt)
}

// dictionaryEncoder encodes dictionary-encoded values as the values they
// stand for. When the dictionary is no longer than the batch, each entry is
// encoded once per batch and rows copy the encoded bytes.
type dictionaryEncoder[I indexType] struct {
	validity
	idx  []I
	vals valueEncoder
	dictCache
}

func (e *dictionaryEncoder[I]) bind(arr arrow.Array) {
	e.set(arr)
	e.idx = values[I](arr)
	e.bindDictionary(arr, e.vals.bind, e.vals)
}

func (e *dictionaryEncoder[I]) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, "null"...)
	}
	return e.appendEntry(dst, e.vals, int(e.idx[i]))
}

// entryAppender encodes element k of the array it is bound to (a JSON or
// an Avro encoder).
type entryAppender interface {
	appendValue(dst []byte, k int) []byte
}

// dictCache encodes a batch's dictionary entries once, when the dictionary
// is no longer than the batch, so rows copy bytes instead of re-encoding.
type dictCache struct {
	cached   bool
	rendered []byte // encoded dictionary entries, back to back
	starts   []int  // entry k is rendered[starts[k]:starts[k+1]]
}

// bindDictionary binds the entries' encoder (bind) to arr's dictionary and
// renders the entries with enc when that pays off.
func (c *dictCache) bindDictionary(arr arrow.Array, bind func(arrow.Array), enc entryAppender) {
	c.cached = false
	if arr.Len() == 0 {
		return // an empty array may have no dictionary at all
	}
	dict := arr.(*array.Dictionary).Dictionary()
	bind(dict)
	if n := dict.Len(); n <= arr.Len() {
		c.rendered, c.starts = c.rendered[:0], append(c.starts[:0], 0)
		for k := range n {
			c.rendered = enc.appendValue(c.rendered, k)
			c.starts = append(c.starts, len(c.rendered))
		}
		c.cached = true
	}
}

// appendEntry appends dictionary entry k.
func (c *dictCache) appendEntry(dst []byte, enc entryAppender, k int) []byte {
	if c.cached {
		return append(dst, c.rendered[c.starts[k]:c.starts[k+1]]...)
	}
	return enc.appendValue(dst, k)
}

func newRunEndEncoder(dt *arrow.RunEndEncodedType, path string, o *JSONOptions) (valueEncoder, error) {
	vals, err := newValueEncoder(dt.Encoded(), path, o)
	if err != nil {
		return nil, err
	}
	switch dt.RunEnds().ID() {
	case arrow.INT16:
		return &runEndEncoder[int16]{vals: vals}, nil
	case arrow.INT32:
		return &runEndEncoder[int32]{vals: vals}, nil
	case arrow.INT64:
		return &runEndEncoder[int64]{vals: vals}, nil
	}
	return nil, unsupported(path, dt)
}

// runEndEncoder encodes run-end-encoded values as the values they stand
// for. Rows are usually read in order, so it remembers the last run found
// and only binary-searches the run ends when a row falls outside it.
type runEndEncoder[R int16 | int32 | int64] struct {
	runCursor[R]
	vals valueEncoder
}

func (e *runEndEncoder[R]) bind(arr arrow.Array) {
	r := arr.(*array.RunEndEncoded)
	e.reset(r)
	e.vals.bind(r.Values())
}

func (e *runEndEncoder[R]) appendValue(dst []byte, i int) []byte {
	return e.vals.appendValue(dst, e.physical(i))
}

// runCursor maps logical rows of a run-end encoded array to the physical
// index of their value. It remembers the last run found, so consecutive
// rows cost a comparison, and binary-searches the run ends otherwise.
type runCursor[R int16 | int32 | int64] struct {
	ends []R // logical end (exclusive) of each run
	off  int // the array's logical offset

	run              int // physical index of the last run found
	runStart, runEnd int // its logical range [runStart, runEnd)
}

// reset points the cursor at r's run ends.
func (c *runCursor[R]) reset(r *array.RunEndEncoded) {
	c.ends = values[R](r.RunEndsArr())
	c.off = r.Data().Offset()
	c.run, c.runStart, c.runEnd = 0, 0, 0
}

// physical is the value index of logical row i.
func (c *runCursor[R]) physical(i int) int {
	if l := i + c.off; l < c.runStart || l >= c.runEnd {
		c.seek(l)
	}
	return c.run
}

// seek finds the run holding logical position l.
func (c *runCursor[R]) seek(l int) {
	lo, hi := 0, len(c.ends)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if int(c.ends[mid]) > l {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	c.run, c.runStart, c.runEnd = lo, 0, int(c.ends[lo])
	if lo > 0 {
		c.runStart = int(c.ends[lo-1])
	}
}
