package flightsink_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc/codes"

	"github.com/flightsink/flightsink/flightsink"
	"github.com/flightsink/flightsink/internal/kafkatest"
)

var eventSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "k", Type: arrow.BinaryTypes.String},
	{Name: "body", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "deleted", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "part", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	{Name: "dest", Type: arrow.BinaryTypes.String},
	{Name: "hdrs", Type: arrow.MapOf(arrow.BinaryTypes.String, arrow.BinaryTypes.String), Nullable: true},
	{Name: "at", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}},
	{Name: "price", Type: &arrow.Decimal128Type{Precision: 8, Scale: 2}},
}, nil)

type event struct {
	id      int64
	k       string
	body    *string
	deleted bool
	part    *int32
	dest    string
	hdrs    map[string]string
}

func eventBatch(evs []event) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, eventSchema)
	defer b.Release()
	for _, e := range evs {
		b.Field(0).(*array.Int64Builder).Append(e.id)
		b.Field(1).(*array.StringBuilder).Append(e.k)
		if e.body == nil {
			b.Field(2).AppendNull()
		} else {
			b.Field(2).(*array.StringBuilder).Append(*e.body)
		}
		b.Field(3).(*array.BooleanBuilder).Append(e.deleted)
		if e.part == nil {
			b.Field(4).AppendNull()
		} else {
			b.Field(4).(*array.Int32Builder).Append(*e.part)
		}
		b.Field(5).(*array.StringBuilder).Append(e.dest)
		mb := b.Field(6).(*array.MapBuilder)
		if e.hdrs == nil {
			mb.AppendNull()
		} else {
			mb.Append(true)
			for k, v := range e.hdrs {
				mb.KeyBuilder().(*array.StringBuilder).Append(k)
				mb.ItemBuilder().(*array.StringBuilder).Append(v)
			}
		}
		b.Field(7).(*array.TimestampBuilder).Append(arrow.Timestamp(1_767_323_045_678 + e.id))
		b.Field(8).(*array.Decimal128Builder).Append(decimal128.FromI64(1999 + e.id))
	}
	return b.NewRecordBatch()
}

func str(s string) *string { return &s }
func i32(v int32) *int32   { return &v }

func headersOf(r *kgo.Record) map[string]string {
	m := map[string]string{}
	for _, h := range r.Headers {
		m[h.Key] = string(h.Value)
	}
	return m
}

// TestRawFormatsAndTombstones: raw_string writes the column's bytes, a null
// value or a true tombstone_field writes a null record value.
func TestRawFormatsAndTombstones(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	rec := eventBatch([]event{{id: 1, k: "a", body: str("hello")}, {id: 2, k: "b"}, {id: 3, k: "c", body: str("gone"), deleted: true}})
	defer rec.Release()
	wantOK(t, env.put(t, cmdDesc(map[string]any{"topic": topic, "format": "raw_string", "value_field": "body",
		"key_field": "k", "tombstone_field": "deleted"}), eventSchema, batch(rec)))
	got := kafkatest.ReadCommitted(t, env.brokers, topic)
	if len(got) != 3 || string(got[0].Value) != "hello" || got[1].Value != nil || got[2].Value != nil || string(got[2].Key) != "c" {
		t.Fatalf("records: %+v", got)
	}
	res := env.put(t, cmdDesc(map[string]any{"topic": topic, "format": "raw_bytes", "value_field": "body"}), eventSchema, batch(rec))
	wantStatus(t, res, codes.InvalidArgument, string(flightsink.ReasonBadSchema), `"body"`, "raw_bytes a binary one")
}

// TestHeaders: static headers, a headers column and provenance headers.
func TestHeaders(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	rec := eventBatch([]event{{id: 0, k: "a", hdrs: map[string]string{"trace": "t-1"}}, {id: 1, k: "b"}})
	defer rec.Release()
	wantOK(t, env.put(t, cmdDesc(map[string]any{"topic": topic, "writer_id": "hdr-" + topic, "headers_field": "hdrs",
		"headers": map[string]string{"source": "test"}, "provenance_headers": true, "value_fields": []string{"id"}}),
		eventSchema, batchMeta(rec, checkpoint(1))))
	// The same shape in a transaction that is then aborted: nothing of it is visible.
	res := env.put(t, cmdDesc(map[string]any{"topic": topic, "headers_field": "hdrs", "provenance_headers": true,
		"partition_field": "part", "tombstone_field": "deleted"}), eventSchema, batch(rec), metaOnly(`{"abort":"no"}`))
	wantStatus(t, res, codes.Aborted, string(flightsink.ReasonClientAbort))
	got := kafkatest.ReadCommitted(t, env.brokers, topic)
	if len(got) != 2 {
		t.Fatalf("%d records, want the 2 of the committed stream", len(got))
	}
	want := []map[string]string{
		{"source": "test", "trace": "t-1", "flightsink-writer": "hdr-" + topic, "flightsink-checkpoint": "1", "flightsink-row": "0"},
		{"source": "test", "flightsink-writer": "hdr-" + topic, "flightsink-checkpoint": "1", "flightsink-row": "1"},
	}
	for i, r := range got {
		if h := headersOf(r); !reflect.DeepEqual(h, want[i]) {
			t.Errorf("record %d headers %v, want %v", i, h, want[i])
		}
		if string(r.Value) != `{"id":`+itoa(i)+`}` {
			t.Errorf("record %d value %s: value_fields not applied", i, r.Value)
		}
	}
}

// TestPartitionField: an explicit partition is honoured; one out of range
// is a bad row, named, with nothing of its batch written.
func TestPartitionField(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 3, nil)
	rec := eventBatch([]event{{id: 0, k: "a", part: i32(2)}, {id: 1, k: "a", part: i32(0)}, {id: 2, k: "a", part: i32(2)}})
	defer rec.Release()
	wantOK(t, env.put(t, cmdDesc(map[string]any{"topic": topic, "key_field": "k", "partition_field": "part"}), eventSchema, batch(rec)))
	for _, r := range kafkatest.ReadCommitted(t, env.brokers, topic) {
		var v struct{ ID int64 }
		_ = json.Unmarshal(r.Value, &v)
		if want := []int32{2, 0, 2}[v.ID]; r.Partition != want {
			t.Errorf("row %d in partition %d, want %d", v.ID, r.Partition, want)
		}
	}
	bad := eventBatch([]event{{id: 0, k: "a", part: i32(1)}, {id: 1, k: "a", part: i32(3)}})
	defer bad.Release()
	res := env.put(t, cmdDesc(map[string]any{"topic": topic, "partition_field": "part"}), eventSchema, batch(bad))
	wantStatus(t, res, codes.InvalidArgument, string(flightsink.ReasonBadRow), "stream row 1 (batch 0, row 1)", "partitions 0 to 2")
}

// TestTopicField: rows go to the topic their column names, inside one
// transaction: an aborted stream leaves nothing visible in any of them; a
// missing topic is NotFound naming the row.
func TestTopicField(t *testing.T) {
	env := startServer(t)
	a, b := kafkatest.TopicName(t)+"-a", kafkatest.TopicName(t)+"-b"
	kafkatest.CreateTopic(t, env.brokers, a, 1, nil)
	kafkatest.CreateTopic(t, env.brokers, b, 1, nil)
	rec := eventBatch([]event{{id: 0, dest: a}, {id: 1, dest: b}, {id: 2, dest: a}})
	defer rec.Release()
	desc := cmdDesc(map[string]any{"topic": a, "topic_field": "dest", "exclude_fields": []string{"dest", "hdrs"}})
	wantOK(t, env.put(t, desc, eventSchema, batchMeta(rec, checkpoint(1))))
	// The same rows again, then an abort: nothing of it is visible.
	res := env.put(t, desc, eventSchema, batch(rec), metaOnly(`{"abort":"changed my mind"}`))
	wantStatus(t, res, codes.Aborted, string(flightsink.ReasonClientAbort), "changed my mind")
	if n := len(kafkatest.ReadCommitted(t, env.brokers, a)); n != 2 {
		t.Errorf("topic a has %d records, want 2", n)
	}
	got := kafkatest.ReadCommitted(t, env.brokers, b)
	if len(got) != 1 || !strings.HasPrefix(string(got[0].Value), `{"id":1,"k":"","body":null,"deleted":false,"part":null,"at":"2026-01-02T03:04:05.679Z"`) {
		t.Errorf("topic b: %d records %v", len(got), got)
	}
	missing := eventBatch([]event{{id: 0, dest: a}, {id: 1, dest: a + "-nope"}})
	defer missing.Release()
	res = env.put(t, desc, eventSchema, batch(missing))
	wantStatus(t, res, codes.NotFound, string(flightsink.ReasonTopicMissing), "stream row 1 (batch 0, row 1)", a+"-nope")
}

// TestJSONOptionsEnvelope: json.timestamp_format, json.decimal and Kafka
// Connect's schema envelope.
func TestJSONOptionsEnvelope(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	rec := eventBatch([]event{{id: 1, k: "a"}})
	defer rec.Release()
	wantOK(t, env.put(t, cmdDesc(map[string]any{"topic": topic, "value_fields": []string{"id", "at", "price"},
		"json.timestamp_format": "unix_millis", "json.decimal": "number", "json.include_schema": true}), eventSchema, batch(rec)))
	got := kafkatest.ReadCommitted(t, env.brokers, topic)
	want := `{"schema":{"fields":[{"field":"id","optional":false,"type":"int64"},` +
		`{"field":"at","name":"org.apache.kafka.connect.data.Timestamp","optional":false,"type":"int64","version":1},` +
		`{"field":"price","optional":false,"type":"double"}],"optional":false,"type":"struct"},` +
		`"payload":{"id":1,"at":1767323045679,"price":20.00}}`
	if len(got) != 1 || string(got[0].Value) != want {
		t.Fatalf("value:\n got %s\nwant %s", got[0].Value, want)
	}
}

// TestReusedBatchBuffers: a stream's acknowledged batches lend their record
// slices and buffers to the next batches. 60 batches of varying sizes (so a
// reused buffer is sometimes larger, sometimes too small), with per-row
// headers and nulls, each acknowledged before the next is encoded: every
// record in Kafka is exactly what its own row says, nothing left over from
// the batch whose memory it reused.
func TestReusedBatchBuffers(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	var steps []step
	var want []event
	id := int64(0)
	for b := 0; b < 60; b++ {
		n := 1 + (b*37)%50
		evs := make([]event, n)
		for i := range evs {
			e := event{id: id, k: fmt.Sprintf("k%d", id%7), dest: topic}
			if id%3 == 0 {
				e.body = str(strings.Repeat("x", int(id%40)))
			}
			if id%4 == 0 {
				e.hdrs = map[string]string{"trace": fmt.Sprintf("t-%d", id)}
			}
			evs[i] = e
			id++
		}
		want = append(want, evs...)
		rec := eventBatch(evs)
		defer rec.Release()
		steps = append(steps, batchMeta(rec, checkpoint(b+1)))
	}
	desc := cmdDesc(map[string]any{"topic": topic, "delivery": "at_least_once", "key_field": "k", "headers_field": "hdrs",
		"headers": map[string]string{"source": "reuse"}, "value_fields": []string{"id", "body"}})
	wantOK(t, env.put(t, desc, eventSchema, steps...))
	got := kafkatest.ReadCommitted(t, env.brokers, topic)
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i, r := range got {
		e := want[i]
		body := "null"
		if e.body != nil {
			body = `"` + *e.body + `"`
		}
		if v := fmt.Sprintf(`{"id":%d,"body":%s}`, e.id, body); string(r.Value) != v {
			t.Fatalf("record %d value %s, want %s", i, r.Value, v)
		}
		if string(r.Key) != e.k {
			t.Fatalf("record %d key %q, want %q", i, r.Key, e.k)
		}
		wantHdrs := map[string]string{"source": "reuse"}
		for k, v := range e.hdrs {
			wantHdrs[k] = v
		}
		if h := headersOf(r); !reflect.DeepEqual(h, wantHdrs) {
			t.Fatalf("record %d headers %v, want %v", i, h, wantHdrs)
		}
	}
}
