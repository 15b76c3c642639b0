package flightsink

import (
	"fmt"
	"math"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc/codes"

	"github.com/flightsink/flightsink/kafka"
	"github.com/flightsink/flightsink/kafka/encode"
)

// recordOverhead bounds what Kafka's record batch format adds around one
// record's key and value (61-byte batch header plus the record's varints and
// attributes), so a row is checked against max.message.bytes the way the
// broker will check the batch that carries it alone.
const recordOverhead = 61 + 40

// plan turns record batches of one schema into Kafka records: the value
// encoder, the key and timestamp extractors, all built once per stream.
type plan struct {
	topic    string
	info     kafka.TopicInfo
	maxBytes int
	value    *encode.JSON
	key      *encode.Key
	ts       *encode.Timestamp

	bytesPerRow int // running estimate that sizes each batch's buffers

	// The offset arrays are reused batch after batch. A batch's records and
	// bytes are not: they live until Kafka acknowledges them, then the
	// collector takes them (holding them for reuse until the next
	// checkpoint would defeat the kafka.max_buffered_bytes bound).
	valueEnds, keyEnds []int
}

// take returns new buffers for a batch of n rows.
func (p *plan) take(n, valueBytes int) *batchRecords {
	return &batchRecords{records: make([]kgo.Record, n), values: make([]byte, 0, valueBytes)}
}

func ints(buf []int, n int) []int {
	if cap(buf) < n {
		return make([]int, n)
	}
	return buf[:n]
}

// newPlan checks the schema against the descriptor: every column must be
// encodable and the key and timestamp columns must exist with usable types.
func newPlan(schema *arrow.Schema, d *Descriptor, info kafka.TopicInfo) (*plan, error) {
	p := &plan{topic: d.Topic, info: info, maxBytes: int(info.MaxMessageBytes), bytesPerRow: 64}
	if info.Compacted && d.KeyField == "" {
		return nil, badDescriptor(fmt.Sprintf(`topic %q is compacted (cleanup.policy=compact): every record needs a key; set "key_field"`, d.Topic))
	}
	var err error
	if p.value, err = encode.NewJSON(schema); err != nil {
		return nil, schemaError("", err)
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
	return p, nil
}

func schemaError(key string, err error) *Error {
	msg := "unsupported schema: " + err.Error()
	if key != "" {
		msg = fmt.Sprintf("invalid descriptor key %q: %v", key, err)
	}
	return &Error{Code: codes.InvalidArgument, Reason: ReasonBadSchema, Msg: msg, Err: err}
}

// batchRecords is one record batch turned into Kafka records. The records
// point into buffers owned by this value; they stay untouched until Kafka
// acknowledges them.
type batchRecords struct {
	records []kgo.Record
	values  []byte
	keys    []byte
}

// encode turns every row of rec into a record, checking each against the
// topic's max.message.bytes before any of them is produced. firstRow is the
// stream row number of rec's row 0, batch the stream's batch number; both
// name a bad row in the error.
func (p *plan) encode(rec arrow.RecordBatch, firstRow, batch int64) (*batchRecords, error) {
	n := int(rec.NumRows())
	if err := p.value.Bind(rec); err != nil {
		return nil, badStream("record batch %d does not match the stream's schema: %v", batch, err)
	}
	if p.key != nil {
		p.key.Bind(rec)
	}
	if p.ts != nil {
		p.ts.Bind(rec)
	}
	out := p.take(n, n*p.bytesPerRow+64)
	values := out.values
	p.valueEnds = ints(p.valueEnds, n)
	valueEnds := p.valueEnds
	var keys []byte
	var keyEnds []int
	if p.key != nil {
		keys = out.keys
		if keys == nil {
			keys = make([]byte, 0, n*8)
		}
		p.keyEnds = ints(p.keyEnds, n)
		keyEnds = p.keyEnds
	}
	var tsMin, tsMax int64 = math.MinInt64, math.MaxInt64
	if p.ts != nil && p.info.CreateTime {
		now := time.Now()
		if p.info.TimestampBeforeMax < time.Duration(math.MaxInt64) {
			tsMin = now.Add(-p.info.TimestampBeforeMax).UnixMilli()
		}
		if p.info.TimestampAfterMax < time.Duration(math.MaxInt64) {
			tsMax = now.Add(p.info.TimestampAfterMax).UnixMilli()
		}
	}
	for i := 0; i < n; i++ {
		start := len(values)
		values = p.value.AppendRow(values, i)
		valueEnds[i] = len(values)
		size := len(values) - start
		r := &out.records[i]
		r.Topic = p.topic
		if p.key != nil {
			kstart := len(keys)
			var ok bool
			keys, ok = p.key.AppendKey(keys, i)
			keyEnds[i] = len(keys)
			if !ok {
				keyEnds[i] = -1 - kstart // null key marker
				if p.info.Compacted {
					return nil, p.badRow(firstRow, batch, i, fmt.Sprintf(
						"its key is null, but topic %q is compacted (cleanup.policy=compact) and rejects records without a key", p.topic))
				}
			}
			size += len(keys) - kstart
		}
		if p.ts != nil {
			if ms, ok := p.ts.Millis(i); ok {
				if ms < 0 {
					return nil, p.badRow(firstRow, batch, i, fmt.Sprintf(
						"its timestamp %s is before 1970, which Kafka record timestamps cannot be", time.UnixMilli(ms).UTC().Format(time.RFC3339Nano)))
				}
				if ms < tsMin || ms > tsMax {
					return nil, p.badRow(firstRow, batch, i, p.timestampProblem(ms, ms < tsMin))
				}
				r.Timestamp = msTime(ms)
			}
		}
		if size+recordOverhead > p.maxBytes {
			return nil, p.badRow(firstRow, batch, i, fmt.Sprintf("its record is %d bytes, over topic %q's max.message.bytes (%d)",
				size+recordOverhead, p.topic, p.maxBytes))
		}
	}
	// Slice only now: the buffers may have moved while growing.
	start := 0
	for i := range out.records {
		out.records[i].Value = values[start:valueEnds[i]:valueEnds[i]]
		start = valueEnds[i]
	}
	if p.key != nil {
		start = 0
		for i := range out.records {
			end := keyEnds[i]
			if end < 0 { // null key: no key, next key starts where this one would have
				start = -1 - end
				continue
			}
			out.records[i].Key = keys[start:end:end]
			start = end
		}
	}
	if n > 0 {
		p.bytesPerRow = len(values)/n + 1
	}
	out.values, out.keys = values, keys
	return out, nil
}

// badRow names a row that cannot be written; its whole batch is rejected.
func (p *plan) badRow(firstRow, batch int64, i int, problem string) *Error {
	return &Error{Code: codes.InvalidArgument, Reason: ReasonBadRow, Msg: fmt.Sprintf(
		"stream row %d (batch %d, row %d): %s; no row of this batch was written", firstRow+int64(i), batch, i, problem)}
}

// timestampProblem says why the broker would reject a record timestamp.
func (p *plan) timestampProblem(ms int64, early bool) string {
	ts := time.UnixMilli(ms).UTC().Format(time.RFC3339Nano)
	if early {
		return fmt.Sprintf("its timestamp %s is more than message.timestamp.before.max.ms (%d ms) before now, so topic %q would reject it",
			ts, p.info.TimestampBeforeMax.Milliseconds(), p.topic)
	}
	return fmt.Sprintf("its timestamp %s is more than message.timestamp.after.max.ms (%d ms) after now, so topic %q would reject it",
		ts, p.info.TimestampAfterMax.Milliseconds(), p.topic)
}
