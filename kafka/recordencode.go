package kafka

import (
	"github.com/flightsink/flightsink/kafka/sinkapi"

	"fmt"
	"strconv"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"
)

// recordStructBytes is what one kgo.Record costs besides its bytes.
const recordStructBytes = int(unsafe.Sizeof(kgo.Record{}))

// encode turns rows of the bound batch, from row `from` on, into records,
// checking each against its topic's limits. It stops after p.chunkBytes of
// records (their bytes and structs), so a batch that expands into more than
// that (a run-end encoded or dictionary column) is built and produced one
// chunk at a time; next is the first row it did not encode (rows when
// done). firstRow is the stream row number of the batch's row 0, batch the
// stream's batch number, checkpoint the number the rows' checkpoint will
// have (for provenance headers), now the produce time for the whole batch.
func (p *Plan) Encode(rows, from int, firstRow, checkpoint int64, now time.Time) (sinkapi.Chunk, int, error) {
	out, next, err := p.encode(rows, from, firstRow, checkpoint, now)
	if err != nil {
		return nil, 0, err
	}
	return out, next, nil
}

// encode is Encode with the concrete type.
func (p *Plan) encode(rows, from int, firstRow, checkpoint int64, now time.Time) (out *Records, next int, err error) {
	// sized from the rows so far: what this chunk will most likely hold
	wantRecords := min(rows-from, p.chunkBytes/(p.bytesPerRow+recordStructBytes)+1)
	wantBuf := wantRecords*p.bytesPerRow + 64
	out = p.pool.get(wantBuf)
	if cap(out.records) < wantRecords {
		out.records = make([]kgo.Record, 0, wantRecords)
	}
	out.records = out.records[:0]
	out.rejected = out.rejected[:0]
	buf := out.buf[:0]
	if cap(buf) < wantBuf {
		buf = make([]byte, 0, wantBuf)
	}
	p.spans = p.spans[:0]
	p.hdrs = p.hdrs[:0]
	p.hdrStart = p.hdrStart[:0]
	rc := rowContext{now: now, win: timestampWindow(p.info, now), firstRow: firstRow, checkpoint: checkpoint}
	i := from
	for ; i < rows; i++ {
		if i > from && len(buf)+len(out.records)*recordStructBytes >= p.chunkBytes {
			break
		}
		mark := rowMark{len(out.records), len(buf), len(p.spans), len(p.hdrs), len(p.hdrStart)}
		var bad *RowError
		if buf, bad = p.row(out, buf, i, &rc); bad == nil {
			continue
		}
		if p.d.OnBadRow == sinkapi.BadRowFail {
			return nil, 0, bad
		}
		out.records, buf = out.records[:mark.records], buf[:mark.buf] // take the row back
		p.spans, p.hdrs, p.hdrStart = p.spans[:mark.spans], p.hdrs[:mark.hdrs], p.hdrStart[:mark.hdrStart]
		out.rejected = append(out.rejected, *bad)
		if p.d.OnBadRow == sinkapi.BadRowDeadLetter {
			if buf, err = p.deadLetter(out, buf, i, bad, &rc); err != nil {
				return nil, 0, err
			}
		}
	}
	p.hdrStart = append(p.hdrStart, len(p.hdrs))
	p.assemble(out, buf)
	p.pool.track(out)
	if n := i - from; n > 0 {
		p.bytesPerRow = len(buf)/n + 1
	}
	return out, i, nil
}

// rowContext is what every row of one Encode call shares.
type rowContext struct {
	now                  time.Time
	win                  msWindow // the stream topic's timestamp window, once per batch
	firstRow, checkpoint int64
}

// rowMark is where a row's record, bytes, spans and headers start, so a
// bad row can be taken back.
type rowMark struct{ records, buf, spans, hdrs, hdrStart int }

// row appends row i's record to out (its bytes to buf): the value, key,
// headers, timestamp and partition, each checked against the record's
// topic. A row that cannot become a record is a *RowError, with whatever
// it appended left for the caller to take back.
func (p *Plan) row(out *Records, buf []byte, i int, rc *rowContext) ([]byte, *RowError) {
	b := &p.bound
	out.records = append(out.records, kgo.Record{}) // zeroed: kgo sets fields of its own on produced records
	r := &out.records[len(out.records)-1]
	r.Partition = -1     // the default partitioner decides, unless partition_field says
	r.Timestamp = rc.now // the produce time, read once per batch (kgo would read the clock per record)
	info := p.info
	r.Topic = p.d.Topic
	if b.topic != nil {
		if b.topic.IsNull(i) {
			return buf, &RowError{Row: i, Column: p.d.TopicField, Problem: fmt.Sprintf("its topic_field %q is null", p.d.TopicField)}
		}
		t, ok := p.topics[b.topic.Value(i)]
		if !ok {
			return buf, &RowError{Row: i, Column: p.d.TopicField, Problem: fmt.Sprintf("its topic_field topic %q was not resolved (UnknownTopics) before encoding", b.topic.Value(i))}
		}
		if t.problem != "" {
			return buf, &RowError{Row: i, Column: p.d.TopicField, Problem: t.problem}
		}
		info = t.info
		r.Topic = t.name
	}
	start := len(buf)
	tombstone := b.tomb != nil && b.tomb.IsValid(i) && b.tomb.Value(i)
	if p.floor != nil && !tombstone {
		// what a few bytes on the wire expand into, checked before encoding
		if limit := int64(info.MaxMessageBytes) - recordOverhead; p.floor.row(i, limit) > limit {
			return buf, &RowError{Row: i, Problem: fmt.Sprintf(
				"its record would be over topic %q's max.message.bytes (%d): its lists have more elements, or its views more bytes, than that",
				r.Topic, info.MaxMessageBytes)}
		}
	}
	value := span{-1, -1}
	switch {
	case tombstone:
	case p.raw != nil:
		var ok bool
		if buf, ok = p.raw.AppendKey(buf, i); ok {
			value = span{start, len(buf)}
		}
	default:
		buf = append(buf, p.prefix...)
		buf = append(buf, p.envelope...)
		buf = p.value.AppendRow(buf, i)
		if p.envelope != nil {
			buf = append(buf, '}')
		}
		value = span{start, len(buf)}
	}
	size := len(buf) - start
	key := span{-1, -1}
	if p.key != nil {
		kstart := len(buf)
		var ok bool
		if buf, ok = p.key.AppendKey(buf, i); ok {
			key = span{kstart, len(buf)}
		} else if info.Compacted {
			return buf, &RowError{Row: i, Column: p.d.KeyField, Problem: fmt.Sprintf(
				"its key is null, but topic %q is compacted (cleanup.policy=compact) and rejects records without a key", r.Topic)}
		}
		size += len(buf) - kstart
	}
	p.spans = append(p.spans, value, key)
	rowHdrs := len(p.hdrs)
	p.hdrStart = append(p.hdrStart, rowHdrs)
	if b.hdrs != nil {
		var err error
		if buf, err = b.hdrs.appendHeaders(buf, i, p); err != nil {
			return buf, &RowError{Row: i, Column: p.d.HeadersField, Problem: err.Error()}
		}
	}
	if p.provenance {
		buf = p.appendProvenance(buf, rc.firstRow+int64(i), rc.checkpoint)
	}
	for _, h := range p.hdrs[rowHdrs:] {
		size += len(h.key) + h.val.end - h.val.start + 10
	}
	for _, h := range p.staticHeaders {
		size += len(h.Key) + len(h.Value) + 10
	}
	if p.ts != nil {
		if ms, ok := p.ts.Millis(i); ok {
			// the stream topic's window is worked out once per batch
			if b.topic != nil || ms < rc.win.lo || ms > rc.win.hi {
				if problem := timestampAllowed(ms, info, rc.now); problem != "" {
					return buf, &RowError{Row: i, Column: p.d.TimestampField, Problem: problem}
				}
			}
			r.Timestamp = time.UnixMilli(ms)
		}
	}
	if b.part != nil {
		if v, ok := b.part(i); ok {
			if v < 0 || v >= int64(info.Partitions) {
				return buf, &RowError{Row: i, Column: p.d.PartitionField, Problem: fmt.Sprintf("its partition_field %q is %d, but topic %q has partitions 0 to %d",
					p.d.PartitionField, v, r.Topic, info.Partitions-1)}
			}
			r.Partition = int32(v)
		}
	}
	if size+recordOverhead > int(info.MaxMessageBytes) {
		return buf, &RowError{Row: i, Problem: fmt.Sprintf("its record is %d bytes, over topic %q's max.message.bytes (%d)",
			size+recordOverhead, r.Topic, info.MaxMessageBytes)}
	}
	return buf, nil
}

// deadLetter appends the dead-letter record of bad row i: the whole row as
// JSON, with headers naming the error. One that the dead-letter topic
// cannot take either fails the batch.
func (p *Plan) deadLetter(out *Records, buf []byte, i int, bad *RowError, rc *rowContext) ([]byte, error) {
	out.records = append(out.records, kgo.Record{})
	r := &out.records[len(out.records)-1]
	r.Partition, r.Timestamp, r.Topic = -1, rc.now, p.d.DeadLetter.Topic
	start := len(buf)
	buf = p.dlqValue.AppendRow(buf, i)
	p.spans = append(p.spans, span{start, len(buf)}, span{-1, -1})
	size := len(buf) - start
	p.hdrStart = append(p.hdrStart, len(p.hdrs))
	header := func(key string, val []byte) {
		s := len(buf)
		buf = append(buf, val...)
		p.hdrs = append(p.hdrs, hdrRef{key, span{s, len(buf)}})
		size += len(key) + len(val) + 10
	}
	header(sinkapi.HeaderError, []byte(bad.Problem))
	header(sinkapi.HeaderReason, []byte("bad_row"))
	if bad.Column != "" {
		header(sinkapi.HeaderColumn, []byte(bad.Column))
	}
	header(sinkapi.HeaderRow, strconv.AppendInt(nil, rc.firstRow+int64(i), 10))
	header(sinkapi.HeaderSourceTopic, []byte(p.d.Topic))
	header(sinkapi.HeaderWriter, []byte(p.d.WriterID))
	header(sinkapi.HeaderCheckpoint, strconv.AppendInt(nil, rc.checkpoint, 10))
	for _, h := range p.staticHeaders {
		size += len(h.Key) + len(h.Value) + 10
	}
	if limit := int(p.d.DeadLetter.MaxMessageBytes); size+recordOverhead > limit {
		return buf, &RowError{Row: i, Column: bad.Column, Problem: fmt.Sprintf(
			"%s; and its dead-letter record is %d bytes, over topic %q's max.message.bytes (%d)",
			bad.Problem, size+recordOverhead, p.d.DeadLetter.Topic, limit)}
	}
	return buf, nil
}

// assemble points the records at their bytes and headers (only now: the
// buffer may have moved while growing).
func (p *Plan) assemble(out *Records, buf []byte) {
	const perRow = 2 // value and key spans
	hdrStart := p.hdrStart
	withHeaders := len(p.hdrs)+len(p.staticHeaders) > 0
	if want := len(p.hdrs) + len(out.records)*len(p.staticHeaders); withHeaders && cap(out.headers) >= want {
		out.headers = out.headers[:0]
	} else if withHeaders {
		out.headers = make([]kgo.RecordHeader, 0, want)
	}
	for i := range out.records {
		r := &out.records[i]
		if v := p.spans[i*perRow]; v.start >= 0 {
			r.Value = buf[v.start:v.end:v.end]
		}
		if k := p.spans[i*perRow+1]; k.start >= 0 {
			r.Key = buf[k.start:k.end:k.end]
		}
		if withHeaders {
			from := len(out.headers)
			out.headers = append(out.headers, p.staticHeaders...)
			for _, h := range p.hdrs[hdrStart[i]:hdrStart[i+1]] {
				var v []byte
				if h.val.start >= 0 {
					v = buf[h.val.start:h.val.end:h.val.end]
				}
				out.headers = append(out.headers, kgo.RecordHeader{Key: h.key, Value: v})
			}
			r.Headers = out.headers[from:len(out.headers):len(out.headers)]
		}
	}
	out.buf = buf
}

// internString keeps one copy of each topic or header name.
func (p *Plan) internString(s string) string {
	if v, ok := p.intern[s]; ok {
		return v
	}
	s = string([]byte(s)) // own the bytes: s may point into Arrow memory
	p.intern[s] = s
	return s
}

// appendProvenance adds the headers that let at-least-once consumers drop
// duplicates: the writer, the checkpoint the row belongs to, its stream row.
func (p *Plan) appendProvenance(buf []byte, row, checkpoint int64) []byte {
	start := len(buf)
	buf = append(buf, p.d.WriterID...)
	p.hdrs = append(p.hdrs, hdrRef{"flightsink-writer", span{start, len(buf)}})
	start = len(buf)
	buf = strconv.AppendInt(buf, checkpoint, 10)
	p.hdrs = append(p.hdrs, hdrRef{"flightsink-checkpoint", span{start, len(buf)}})
	start = len(buf)
	buf = strconv.AppendInt(buf, row, 10)
	p.hdrs = append(p.hdrs, hdrRef{"flightsink-row", span{start, len(buf)}})
	return buf
}
