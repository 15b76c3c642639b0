package kafka

import (
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flightsink/flightsink/kafka/encode"
)

// recordOverhead bounds what Kafka's record batch format adds around one
// record's key and value (61-byte batch header plus the record's varints and
// attributes), so a row is checked against max.message.bytes the way the
// broker will check the batch that carries it alone.
const recordOverhead = 61 + 40

// rowEncoder turns rows of a batch into record values (JSON, Avro).
type rowEncoder interface {
	Bind(rec arrow.RecordBatch) error
	AppendRow(dst []byte, row int) []byte
}

// RegisterFunc registers a value schema under a subject and returns its
// id (a schema registry); its error is returned as it is.
type RegisterFunc func(subject, schema string) (int, error)

// avroName makes a topic name a valid Avro record name.
func avroName(topic string) string {
	b := []byte(topic)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || (i > 0 && c >= '0' && c <= '9')) {
			b[i] = '_'
		}
	}
	return string(b)
}

// plan turns record batches of one schema into Kafka records, built once
// per stream: the value encoder, the key, timestamp, partition, topic,
// tombstone and header columns.
type Plan struct {
	d      *RecordOptions
	info   TopicInfo             // the descriptor's topic
	topics map[string]topicEntry // the stream's topic and those topic_field names, resolved

	value      rowEncoder  // JSON or Avro; nil for raw formats
	envelope   []byte      // json.include_schema: `{"schema":…,"payload":`
	raw        *encode.Key // raw_string / raw_bytes: the value column
	proj       []int       // value_fields / exclude_fields: the value's columns
	projSch    *arrow.Schema
	prefix     []byte // Confluent wire format header (magic byte, schema id) for Avro with a registry
	avroSchema string // format avro: the writer schema (logged when there is no registry)
	key        *encode.Key
	ts         *encode.Timestamp

	tombCol, partCol, topicCol, hdrCol int // -1 when not used
	staticHeaders                      []kgo.RecordHeader
	provenance                         bool

	bytesPerRow int         // running estimate that sizes each batch's buffer
	spans       []span      // scratch: value, key and header byte ranges of one batch
	hdrs        []hdrRef    // scratch: headers of one batch
	hdrStart    []int       // scratch: each row's first entry in hdrs
	pool        *RecordPool // acknowledged batches to encode into; nil: allocate each
	chunkBytes  int         // the most one encode call builds (records and their bytes)
	bound       bound       // the columns of the batch being encoded
	floorCols   []int       // the columns that go into a record (value, key, headers)
	floor       *valueFloor // the bound batch's lower bound of a row's size; nil: nothing to check
	intern      map[string]string
}

// defaultChunkBytes is what one chunk of records may hold when the stream
// sets nothing else (tests, benchmarks).
const defaultChunkBytes = 8 << 20

// topicEntry is a topic rows may go to: its name (one copy per stream)
// and what the checks need to know of it.
type topicEntry struct {
	name string
	info TopicInfo
}

// span is a byte range of a batch's buffer; start < 0 means null.
type span struct{ start, end int }

type hdrRef struct {
	key string
	val span
}

// newPlan checks the schema against the descriptor: every column must be
// encodable and the named columns must exist with usable types.
func NewPlan(schema *arrow.Schema, d *RecordOptions, info TopicInfo, register RegisterFunc) (*Plan, error) {
	p := &Plan{d: d, info: info, topics: map[string]topicEntry{d.Topic: {d.Topic, info}},
		bytesPerRow: 64, chunkBytes: defaultChunkBytes, tombCol: -1, partCol: -1, topicCol: -1, hdrCol: -1, intern: map[string]string{}}
	if info.Compacted && d.KeyField == "" {
		return nil, optionError(fmt.Sprintf(`topic %q is compacted (cleanup.policy=compact): every record needs a key; set "key_field"`, d.Topic))
	}
	var err error
	valueSchema := schema
	if len(d.ValueFields) > 0 || len(d.ExcludeFields) > 0 {
		if p.proj, valueSchema, err = projection(schema, d); err != nil {
			return nil, err
		}
		p.projSch = valueSchema
	}
	switch d.Format {
	case FormatJSON:
		json, err := encode.NewJSONWithOptions(valueSchema, d.JSON)
		if err != nil {
			return nil, schemaError("", err)
		}
		p.value = json
		if d.JSONIncludeSchema {
			sch, err := encode.ConnectSchema(valueSchema, d.JSON)
			if err != nil {
				return nil, schemaError("json.include_schema", err)
			}
			p.envelope = append(append([]byte(`{"schema":`), sch...), `,"payload":`...)
		}
	case FormatAvro:
		avro, err := encode.NewAvro(valueSchema)
		if err != nil {
			return nil, schemaError("", err)
		}
		p.value = avro
		schemaText, err := encode.AvroSchema(valueSchema, avroName(d.Topic), "flightsink")
		if err != nil {
			return nil, schemaError("", err)
		}
		p.avroSchema = schemaText
		if register != nil {
			subject := d.Subject
			if subject == "" {
				subject = d.Topic + "-value" // TopicNameStrategy
			}
			id, err := register(subject, schemaText)
			if err != nil {
				return nil, err
			}
			p.prefix = WirePrefix(id)
		}
	case FormatRawString, FormatRawBytes:
		col := d.ValueField
		if col == "" {
			if schema.NumFields() != 1 {
				return nil, optionError(fmt.Sprintf(`format %q takes one value column: the schema has %d columns, so name one with "value_field"`, d.Format, schema.NumFields()))
			}
			col = schema.Field(0).Name
		}
		if err := rawColumnType(schema, col, d.Format); err != nil {
			return nil, err
		}
		if p.raw, err = encode.NewKey(schema, col); err != nil {
			return nil, schemaError("value_field", err)
		}
	}
	if d.KeyField != "" {
		if p.key, err = encode.NewKey(schema, d.KeyField); err != nil {
			return nil, schemaError("key_field", err)
		}
	}
	if d.TimestampField != "" {
		if p.ts, err = encode.NewTimestamp(schema, d.TimestampField); err != nil {
			return nil, schemaError("timestamp_field", err)
		}
	}
	if p.tombCol, err = column(schema, "tombstone_field", d.TombstoneField, isBool); err != nil {
		return nil, err
	}
	if p.partCol, err = column(schema, "partition_field", d.PartitionField, isInteger); err != nil {
		return nil, err
	}
	if p.topicCol, err = column(schema, "topic_field", d.TopicField, isString); err != nil {
		return nil, err
	}
	if p.hdrCol, err = column(schema, "headers_field", d.HeadersField, isHeaders); err != nil {
		return nil, err
	}
	for k, v := range d.Headers {
		p.staticHeaders = append(p.staticHeaders, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	p.floorCols = recordColumns(schema, p)
	p.provenance = d.ProvenanceHeaders
	return p, nil
}

// recordColumns are the columns whose values go into a record: the value's
// (all, the projection, or the raw value column), the key and the headers.
func recordColumns(schema *arrow.Schema, p *Plan) []int {
	var cols []int
	byName := func(name string) {
		if name != "" {
			cols = append(cols, schema.FieldIndices(name)...)
		}
	}
	switch {
	case p.raw != nil:
		name := p.d.ValueField
		if name == "" {
			name = schema.Field(0).Name
		}
		byName(name)
	case p.proj != nil:
		cols = append(cols, p.proj...)
	default:
		for i := range schema.Fields() {
			cols = append(cols, i)
		}
	}
	byName(p.d.KeyField)
	if p.hdrCol >= 0 {
		cols = append(cols, p.hdrCol)
	}
	return cols
}

// Records is one record batch turned into Kafka records. The records
// point into buffers owned by this value; they stay untouched until Kafka
// acknowledges them.
type Records struct {
	records []kgo.Record
	buf     []byte
	headers []kgo.RecordHeader
	pool    *RecordPool // where the batch goes once Kafka has acknowledged it
}

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

// RecordPool keeps a few acknowledged batches for the next ones to encode
// into: a stream then reuses its record slices and value buffers instead of
// allocating (and the GC collecting) them per batch. It holds at most
// maxBytes (a share of kafka.max_buffered_bytes), so it adds little to a
// stream's memory. Safe for concurrent use: producer goroutines put, the
// read loop gets.
type RecordPool struct {
	mu       sync.Mutex
	free     []*Records
	bytes    int
	maxBytes int
}

// NewRecordPool keeps at most maxBytes of acknowledged batches.
func NewRecordPool(maxBytes int) *RecordPool { return &RecordPool{maxBytes: maxBytes} }

// get returns a pooled batch, or a new empty one.
func (bp *RecordPool) get() *Records {
	if bp == nil {
		return &Records{}
	}
	bp.mu.Lock()
	defer bp.mu.Unlock()
	if n := len(bp.free); n > 0 {
		b := bp.free[n-1]
		bp.free[n-1] = nil
		bp.free = bp.free[:n-1]
		bp.bytes -= b.footprint()
		return b
	}
	return &Records{pool: bp}
}

// put keeps b for reuse if the pool has room; otherwise the GC takes it.
func (bp *RecordPool) put(b *Records) {
	if bp == nil {
		return
	}
	size := b.footprint()
	bp.mu.Lock()
	defer bp.mu.Unlock()
	if bp.bytes+size <= bp.maxBytes {
		bp.free = append(bp.free, b)
		bp.bytes += size
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

// bound is one batch's columns the plan reads directly.
type bound struct {
	tomb  *array.Boolean
	part  func(i int) (int64, bool)
	topic interface {
		Value(int) string
		IsNull(int) bool
	}
	hdrs headerReader
	rows int
}

// bind prepares the plan for the rows of rec: every encoder reads its
// columns. batch is the stream's batch number (for errors).
func (p *Plan) Bind(rec arrow.RecordBatch) error {
	valueRec := rec
	if p.proj != nil {
		cols := make([]arrow.Array, len(p.proj))
		for i, c := range p.proj {
			cols[i] = rec.Column(c)
		}
		valueRec = array.NewRecordBatch(p.projSch, cols, rec.NumRows())
		defer valueRec.Release() // the encoders keep the columns, which rec holds
	}
	if p.value != nil {
		if err := p.value.Bind(valueRec); err != nil {
			return &BindError{err}
		}
	}
	if p.raw != nil {
		p.raw.Bind(rec)
	}
	if p.key != nil {
		p.key.Bind(rec)
	}
	if p.ts != nil {
		p.ts.Bind(rec)
	}
	b := bound{rows: int(rec.NumRows())}
	if p.tombCol >= 0 {
		b.tomb = rec.Column(p.tombCol).(*array.Boolean)
	}
	if p.partCol >= 0 {
		b.part = integerReader(rec.Column(p.partCol))
	}
	if p.topicCol >= 0 {
		b.topic = rec.Column(p.topicCol).(interface {
			Value(int) string
			IsNull(int) bool
		})
	}
	if p.hdrCol >= 0 {
		b.hdrs = newHeaderReader(rec.Column(p.hdrCol))
	}
	p.bound = b
	p.floor = bindFloor(rec, p.floorCols)
	return nil
}

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
func (p *Plan) Encode(rows, from int, firstRow, checkpoint int64, now time.Time) (out *Records, next int, err error) {
	b := &p.bound
	out = p.pool.get()
	// sized from the rows so far: what this chunk will most likely hold
	if want := min(rows-from, p.chunkBytes/(p.bytesPerRow+recordStructBytes)+1); cap(out.records) < want {
		out.records = make([]kgo.Record, 0, want)
	}
	out.records = out.records[:0]
	buf := out.buf[:0]
	if want := min((rows-from)*p.bytesPerRow, p.chunkBytes) + 64; cap(buf) < want {
		buf = make([]byte, 0, want)
	}
	perRow := 2 // value and key spans
	p.spans = p.spans[:0]
	p.hdrs = p.hdrs[:0]
	p.hdrStart = p.hdrStart[:0]
	win := timestampWindow(p.info, now)
	i := from
	for ; i < rows; i++ {
		if i > from && len(buf)+(i-from)*recordStructBytes >= p.chunkBytes {
			break
		}
		out.records = append(out.records, kgo.Record{}) // zeroed: kgo sets fields of its own on produced records
		r := &out.records[i-from]
		r.Partition = -1  // the default partitioner decides, unless partition_field says
		r.Timestamp = now // the produce time, read once per batch (kgo would read the clock per record)
		info := p.info
		r.Topic = p.d.Topic
		if b.topic != nil {
			if b.topic.IsNull(i) {
				return nil, 0, &RowError{i, fmt.Sprintf("its topic_field %q is null", p.d.TopicField)}
			}
			t, ok := p.topics[b.topic.Value(i)]
			if !ok {
				return nil, 0, &RowError{i, fmt.Sprintf("its topic_field topic %q was not resolved (UnknownTopics) before encoding", b.topic.Value(i))}
			}
			info = t.info
			r.Topic = t.name
		}
		start := len(buf)
		tombstone := b.tomb != nil && b.tomb.IsValid(i) && b.tomb.Value(i)
		if p.floor != nil && !tombstone {
			// what a few bytes on the wire expand into, checked before encoding
			if limit := int64(info.MaxMessageBytes) - recordOverhead; p.floor.row(i, limit) > limit {
				return nil, 0, &RowError{i, fmt.Sprintf(
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
				return nil, 0, &RowError{i, fmt.Sprintf(
					"its key is null, but topic %q is compacted (cleanup.policy=compact) and rejects records without a key", r.Topic)}
			}
			size += len(buf) - kstart
		}
		p.spans = append(p.spans, value, key)
		p.hdrStart = append(p.hdrStart, len(p.hdrs))
		if b.hdrs != nil {
			var err error
			if buf, err = b.hdrs.appendHeaders(buf, i, p); err != nil {
				return nil, 0, &RowError{i, err.Error()}
			}
		}
		if p.provenance {
			buf = p.appendProvenance(buf, firstRow+int64(i), checkpoint)
		}
		for _, h := range p.hdrs[p.hdrStart[i-from]:] {
			size += len(h.key) + h.val.end - h.val.start + 10
		}
		for _, h := range p.staticHeaders {
			size += len(h.Key) + len(h.Value) + 10
		}
		if p.ts != nil {
			if ms, ok := p.ts.Millis(i); ok {
				// the stream topic's window is worked out once per batch
				if b.topic != nil || ms < win.lo || ms > win.hi {
					if problem := timestampAllowed(ms, info, now); problem != "" {
						return nil, 0, &RowError{i, problem}
					}
				}
				r.Timestamp = time.UnixMilli(ms)
			}
		}
		if b.part != nil {
			if v, ok := b.part(i); ok {
				if v < 0 || v >= int64(info.Partitions) {
					return nil, 0, &RowError{i, fmt.Sprintf("its partition_field %q is %d, but topic %q has partitions 0 to %d",
						p.d.PartitionField, v, r.Topic, info.Partitions-1)}
				}
				r.Partition = int32(v)
			}
		}
		if size+recordOverhead > int(info.MaxMessageBytes) {
			return nil, 0, &RowError{i, fmt.Sprintf("its record is %d bytes, over topic %q's max.message.bytes (%d)",
				size+recordOverhead, r.Topic, info.MaxMessageBytes)}
		}
	}
	n := i - from
	p.hdrStart = append(p.hdrStart, len(p.hdrs))
	hdrStart := p.hdrStart
	// Slice only now: the buffer may have moved while growing.
	withHeaders := len(p.hdrs)+len(p.staticHeaders) > 0
	if want := len(p.hdrs) + n*len(p.staticHeaders); withHeaders && cap(out.headers) >= want {
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
	if n > 0 {
		p.bytesPerRow = len(buf)/n + 1
	}
	out.buf = buf
	return out, i, nil
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

// timestampAllowed says why a topic would reject a record timestamp, or "".
func timestampAllowed(ms int64, info TopicInfo, now time.Time) string {
	w := timestampWindow(info, now)
	if ms >= w.lo && ms <= w.hi {
		return ""
	}
	ts := func() string { return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano) }
	if ms < 0 {
		return fmt.Sprintf("its timestamp %s is before 1970, which Kafka record timestamps cannot be", ts())
	}
	if !info.CreateTime {
		return ""
	}
	if max := info.TimestampBeforeMax; ms < w.lo {
		return fmt.Sprintf("its timestamp %s is more than message.timestamp.before.max.ms (%d ms) before now, so topic %q would reject it",
			ts(), max.Milliseconds(), info.Topic)
	}
	if max := info.TimestampAfterMax; ms > w.hi {
		return fmt.Sprintf("its timestamp %s is more than message.timestamp.after.max.ms (%d ms) after now, so topic %q would reject it",
			ts(), max.Milliseconds(), info.Topic)
	}
	return ""
}

// msWindow is the range of record timestamps (ms) a topic accepts now.
type msWindow struct{ lo, hi int64 }

// timestampWindow is what timestampAllowed accepts: from 1970 on, within
// the topic's message.timestamp.before/after.max.ms of now when the topic
// keeps the producer's timestamps (CreateTime).
func timestampWindow(info TopicInfo, now time.Time) msWindow {
	w := msWindow{0, math.MaxInt64}
	if !info.CreateTime {
		return w
	}
	if max := info.TimestampBeforeMax; max < time.Duration(math.MaxInt64) {
		w.lo = max64(0, now.Add(-max).UnixMilli())
	}
	if max := info.TimestampAfterMax; max < time.Duration(math.MaxInt64) {
		w.hi = now.Add(max).UnixMilli()
	}
	return w
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// UsePool makes the plan encode into batches from pool (acknowledged
// batches of the same stream) instead of allocating each.
func (p *Plan) UsePool(pool *RecordPool) { p.pool = pool }

// SetChunkBytes sets the most one Encode call builds: records, their bytes
// and headers. What a batch expands into is built and produced in chunks
// of about this size.
func (p *Plan) SetChunkBytes(n int) { p.chunkBytes = max(n, 1) }

// AvroSchema is the Avro writer schema of format avro, "" otherwise.
func (p *Plan) AvroSchema() string { return p.avroSchema }

// Registered reports whether the values carry a schema registry's wire
// format header (format avro with a registry).
func (p *Plan) Registered() bool { return p.prefix != nil }

// UnresolvedTopic is a topic_field topic the plan has not been given yet;
// Row is the first row of the bound batch that names it.
type UnresolvedTopic struct {
	Name string
	Row  int
}

// UnknownTopics lists the bound batch's topic_field topics the plan does
// not know (see AddTopic), in the order of their first rows, so a caller
// can check and look each up once before encoding: no I/O happens inside
// Encode. A null topic is a *RowError.
func (p *Plan) UnknownTopics() ([]UnresolvedTopic, error) {
	col := p.bound.topic
	if col == nil {
		return nil, nil
	}
	var out []UnresolvedTopic
	var seen map[string]bool
	prev, prevOK := "", false
	for i := 0; i < p.bound.rows; i++ {
		if col.IsNull(i) {
			return nil, &RowError{i, fmt.Sprintf("its topic_field %q is null", p.d.TopicField)}
		}
		name := col.Value(i)
		if prevOK && name == prev { // sorted or grouped data: no map look-up
			continue
		}
		prev, prevOK = name, true
		if _, ok := p.topics[name]; ok || seen[name] {
			continue
		}
		if seen == nil {
			seen = map[string]bool{}
		}
		name = string([]byte(name)) // own the bytes: name points into Arrow memory
		seen[name] = true
		out = append(out, UnresolvedTopic{name, i})
	}
	return out, nil
}

// AddTopic gives the plan a topic_field topic rows may go to.
func (p *Plan) AddTopic(name string, info TopicInfo) {
	name = p.internString(name)
	p.topics[name] = topicEntry{name, info}
}
