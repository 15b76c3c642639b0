package kafka

import (
	"github.com/flightsink/flightsink/kafka/sinkapi"

	"fmt"

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

	value       rowEncoder  // JSON, Avro, protobuf; nil for raw formats
	envelope    []byte      // json.include_schema: `{"schema":…,"payload":`
	raw         *encode.Key // raw_string / raw_bytes: the value column
	proj        []int       // value_fields / exclude_fields: the value's columns
	projSch     *arrow.Schema
	prefix      []byte     // Confluent wire format header (magic byte, schema id, protobuf's message index) with a registry
	avroSchema  string     // format avro: the writer schema (logged when there is no registry)
	protoSchema string     // format protobuf: the .proto (logged when there is no registry)
	key         keyEncoder // key_field / key_fields in key_format
	ts          *encode.Timestamp

	tombCol, partCol, topicCol, hdrCol int // -1 when not used
	staticHeaders                      []kgo.RecordHeader
	provenance                         bool

	bytesPerRow int          // running estimate that sizes each batch's buffer
	spans       []span       // scratch: value, key and header byte ranges of one batch
	hdrs        []hdrRef     // scratch: headers of one batch
	hdrStart    []int        // scratch: each row's first entry in hdrs
	pool        *RecordPool  // acknowledged batches to encode into; nil: allocate each
	chunkBytes  int          // the most one encode call builds (records and their bytes)
	bound       bound        // the columns of the batch being encoded
	floorCols   []int        // the columns that go into a record (value, key, headers)
	dlqValue    *encode.JSON // on_bad_row dead_letter: the whole row as JSON
	floor       *valueFloor  // the bound batch's lower bound of a row's size; nil: nothing to check
	intern      map[string]string
}

// defaultChunkBytes is what one chunk of records may hold when the stream
// sets nothing else (tests, benchmarks).
const defaultChunkBytes = 8 << 20

// topicEntry is a topic rows may go to: its name (one copy per stream)
// and what the checks need to know of it.
type topicEntry struct {
	name    string
	info    TopicInfo
	problem string // set: rows naming it are bad rows (RejectTopic)
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
	p := &Plan{d: d, info: info, topics: map[string]topicEntry{d.Topic: {name: d.Topic, info: info}},
		bytesPerRow: 64, chunkBytes: defaultChunkBytes, tombCol: -1, partCol: -1, topicCol: -1, hdrCol: -1, intern: map[string]string{}}
	if info.Compacted && d.KeyField == "" && len(d.KeyFields) == 0 {
		return nil, optionError(fmt.Sprintf(`topic %q is compacted (cleanup.policy=compact): every record needs a key; set "key_field" or "key_fields"`, d.Topic))
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
	case FormatAvro, FormatProtobuf, FormatJSONSchema:
		if d.Format == FormatJSONSchema && register == nil {
			return nil, optionError(`format "json_schema" needs a schema registry (kafka.schema_registry.url); without one use "json"`)
		}
		sf, err := newSchemaFormat(d.Format, valueSchema, valueRecord(d.Topic), false, d.JSON)
		if err != nil {
			return nil, schemaError("", err)
		}
		p.value = sf.enc
		switch d.Format {
		case FormatAvro:
			p.avroSchema = sf.schema.Text
		case FormatProtobuf:
			p.protoSchema = sf.schema.Text
		}
		if p.prefix, err = sf.register(subjectName(d, valueRecord(d.Topic), false), register); err != nil {
			return nil, err
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
	switch {
	case d.KeyField != "" && len(d.KeyFields) > 0:
		return nil, optionError(`keys "key_field" and "key_fields" exclude each other; give one`)
	case len(d.KeyFields) > 0 && (d.KeyFormat == "" || d.KeyFormat == KeyString):
		return nil, optionError(`key "key_fields" makes a record key: set "key_format" to "avro", "protobuf", "json_schema" or "json"`)
	case len(d.KeyFields) > 0 || (d.KeyField != "" && d.KeyFormat != "" && d.KeyFormat != KeyString):
		if p.key, err = newRecordKey(schema, d, register); err != nil {
			return nil, err
		}
	case d.KeyField != "":
		k, err := encode.NewKey(schema, d.KeyField)
		if err != nil {
			return nil, schemaError("key_field", err)
		}
		p.key = stringKey{k}
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
	switch d.OnBadRow {
	case sinkapi.BadRowFail, sinkapi.BadRowSkip:
	case sinkapi.BadRowDeadLetter:
		if d.DeadLetter.Topic == "" {
			return nil, optionError(`"on_bad_row": "dead_letter" needs the dead-letter topic`)
		}
		if p.dlqValue, err = encode.NewJSON(schema); err != nil {
			return nil, schemaError("on_bad_row", fmt.Errorf("a dead-letter record is the row as JSON: %w", err))
		}
	default:
		return nil, optionError(fmt.Sprintf(`"on_bad_row": %q is not one of "fail", "skip", "dead_letter"`, d.OnBadRow))
	}
	p.provenance = d.ProvenanceHeaders
	return p, nil
}

// ProtoSchema is the .proto of format protobuf's values, "" otherwise.
func (p *Plan) ProtoSchema() string { return p.protoSchema }

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
	for _, name := range p.d.KeyFields {
		byName(name)
	}
	if p.hdrCol >= 0 {
		cols = append(cols, p.hdrCol)
	}
	return cols
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
	if p.dlqValue != nil {
		if err := p.dlqValue.Bind(rec); err != nil {
			return &BindError{Err: err}
		}
	}
	if p.value != nil {
		if err := p.value.Bind(valueRec); err != nil {
			return &BindError{Err: err}
		}
	}
	if p.raw != nil {
		p.raw.Bind(rec)
	}
	if p.key != nil {
		if err := p.key.Bind(rec); err != nil {
			return &BindError{Err: err}
		}
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
			if p.d.OnBadRow != sinkapi.BadRowFail {
				continue // a bad row Encode leaves out
			}
			return nil, &RowError{Row: i, Column: p.d.TopicField, Problem: fmt.Sprintf("its topic_field %q is null", p.d.TopicField)}
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
		out = append(out, UnresolvedTopic{Name: name, Row: i})
	}
	return out, nil
}

// AddTopic gives the plan a topic_field topic rows may go to.
func (p *Plan) AddTopic(name string, info TopicInfo) {
	name = p.internString(name)
	p.topics[name] = topicEntry{name: name, info: info}
}

// RejectTopic makes rows naming a topic_field topic that cannot be used
// (forbidden, missing) bad rows with problem, under a bad-row policy
// other than fail.
func (p *Plan) RejectTopic(name, problem string) {
	name = p.internString(name)
	p.topics[name] = topicEntry{name: name, problem: problem}
}
