package flightsink_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"

	"github.com/flightsink/flightsink/flightsink"
	"github.com/flightsink/flightsink/internal/kafkatest"
	"github.com/flightsink/flightsink/kafka"
)

var simpleSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "name", Type: arrow.BinaryTypes.String},
	{Name: "score", Type: arrow.PrimitiveTypes.Float64},
	{Name: "at", Type: arrow.FixedWidthTypes.Timestamp_us},
}, nil)

// simpleBatch makes rows [first, first+n) of simpleSchema; name of row
// bigRow (if ≥ 0) is bigLen bytes long.
func simpleBatch(first, n, bigRow, bigLen int) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, simpleSchema)
	defer b.Release()
	for i := 0; i < n; i++ {
		b.Field(0).(*array.Int64Builder).Append(int64(first + i))
		name := "n" + itoa(first+i)
		if i == bigRow {
			name = strings.Repeat("x", bigLen)
		}
		b.Field(1).(*array.StringBuilder).Append(name)
		b.Field(2).(*array.Float64Builder).Append(float64(i) / 3)
		b.Field(3).(*array.TimestampBuilder).Append(arrow.Timestamp(1_700_000_000_000_000 + int64(i)))
	}
	return b.NewRecordBatch()
}

// TestBadInputs checks that each bad input gets its status code, its
// flightsink-reason trailer and a message naming the culprit, and that
// nothing of it reaches Kafka.
func TestBadInputs(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	rec := simpleBatch(0, 3, -1, 0)
	defer rec.Release()
	unionSchema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "choice", Type: arrow.SparseUnionOf([]arrow.Field{{Name: "a", Type: arrow.PrimitiveTypes.Int32}}, []arrow.UnionTypeCode{0})}}, nil)

	cases := []struct {
		name      string
		desc      *flight.FlightDescriptor
		schema    *arrow.Schema
		steps     []step
		code      codes.Code
		reason    flightsink.Reason
		fragments []string
	}{
		{"path with two elements", &flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{topic, "x"}}, simpleSchema, nil,
			codes.InvalidArgument, flightsink.ReasonBadDescriptor, []string{"exactly one element"}},
		{"unknown key", rawCmd(`{"topic":"` + topic + `","topik":"x"}`), simpleSchema, nil,
			codes.InvalidArgument, flightsink.ReasonBadDescriptor, []string{`unknown key "topik"`}},
		{"wrong JSON type", rawCmd(`{"topic":5}`), simpleSchema, nil,
			codes.InvalidArgument, flightsink.ReasonBadDescriptor, []string{`key "topic" must be a string`}},
		{"not an object", rawCmd(`["orders"]`), simpleSchema, nil,
			codes.InvalidArgument, flightsink.ReasonBadDescriptor, []string{"must be a JSON object"}},
		{"empty topic", rawCmd(`{"topic":""}`), simpleSchema, nil,
			codes.InvalidArgument, flightsink.ReasonBadDescriptor, []string{`key "topic"`, "empty"}},
		{"invalid topic name", rawCmd(`{"topic":"a/b"}`), simpleSchema, nil,
			codes.InvalidArgument, flightsink.ReasonBadDescriptor, []string{`key "topic"`, `"a/b"`}},
		{"bad delivery", rawCmd(`{"topic":"` + topic + `","delivery":"twice"}`), simpleSchema, nil,
			codes.InvalidArgument, flightsink.ReasonBadDescriptor, []string{`key "delivery"`, `"twice"`}},
		{"bad format", rawCmd(`{"topic":"` + topic + `","format":"xml"}`), simpleSchema, nil,
			codes.InvalidArgument, flightsink.ReasonBadDescriptor, []string{`key "format"`, `"xml"`}},
		{"missing key column", rawCmd(`{"topic":"` + topic + `","key_field":"user"}`), simpleSchema, nil,
			codes.InvalidArgument, flightsink.ReasonBadSchema, []string{`"key_field"`, `"user"`}},
		{"float key column", rawCmd(`{"topic":"` + topic + `","key_field":"score"}`), simpleSchema, nil,
			codes.InvalidArgument, flightsink.ReasonBadSchema, []string{`"key_field"`, `"score"`}},
		{"int timestamp column", rawCmd(`{"topic":"` + topic + `","timestamp_field":"id"}`), simpleSchema, nil,
			codes.InvalidArgument, flightsink.ReasonBadSchema, []string{`"timestamp_field"`, `"id"`}},
		{"unsupported column type", pathDesc(topic), unionSchema, nil,
			codes.InvalidArgument, flightsink.ReasonBadSchema, []string{`"choice"`}},
		{"checkpoint zero", pathDesc(topic), simpleSchema, []step{batchMeta(rec, `{"checkpoint":0}`)},
			codes.InvalidArgument, flightsink.ReasonBadMetadata, []string{`"checkpoint"`, ">= 1"}},
		{"metadata not JSON", pathDesc(topic), simpleSchema, []step{metaOnly(`checkpoint 1`)},
			codes.InvalidArgument, flightsink.ReasonBadMetadata, []string{"JSON object", "checkpoint 1"}},
		{"metadata unknown key", pathDesc(topic), simpleSchema, []step{metaOnly(`{"commit":1}`)},
			codes.InvalidArgument, flightsink.ReasonBadMetadata, []string{`"commit"`}},
		{"checkpoint not increasing", pathDesc(topic), simpleSchema, []step{metaOnly(checkpoint(2)), metaOnly(checkpoint(2))},
			codes.InvalidArgument, flightsink.ReasonBadMetadata, []string{"checkpoint 2", "must increase"}},
		{"client abort", pathDesc(topic), simpleSchema, []step{metaOnly(`{"abort":"upstream query failed"}`)},
			codes.Aborted, flightsink.ReasonClientAbort, []string{"upstream query failed"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := env.put(t, c.desc, c.schema, c.steps...)
			wantStatus(t, res, c.code, string(c.reason), c.fragments...)
		})
	}
	if got := kafkatest.ReadCommitted(t, env.brokers, topic); len(got) != 0 {
		t.Errorf("bad streams wrote %d records; want none (each failed before its first row)", len(got))
	}
}

// TestMissingTopic: NotFound, and the stream leaves no topic behind.
func TestMissingTopic(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	rec := simpleBatch(0, 3, -1, 0)
	defer rec.Release()
	res := env.put(t, pathDesc(topic), simpleSchema, batch(rec))
	wantStatus(t, res, codes.NotFound, string(flightsink.ReasonTopicMissing), topic, "kafka.create_topics")
	if kafkatest.TopicExists(t, env.brokers, topic) {
		t.Errorf("topic %s exists after a stream that was refused", topic)
	}
}

// TestCreateTopics: with kafka.create_topics on, a missing topic is created.
func TestCreateTopics(t *testing.T) {
	env := startServer(t, func(_ *flightsink.Config, k *kafka.Config) { k.CreateTopics = true })
	topic := kafkatest.TopicName(t)
	rec := simpleBatch(0, 3, -1, 0)
	defer rec.Release()
	wantOK(t, env.put(t, pathDesc(topic), simpleSchema, batch(rec)))
	if got := kafkatest.ReadCommitted(t, env.brokers, topic); len(got) != 3 {
		t.Fatalf("got %d records, want 3", len(got))
	}
}

// TestRowOverMaxMessageBytes: a row whose record exceeds the topic's
// max.message.bytes is named by its stream row, its whole batch is rejected,
// and the batches before it stay (at-least-once).
func TestRowOverMaxMessageBytes(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	limit := "2000"
	kafkatest.CreateTopic(t, env.brokers, topic, 1, map[string]*string{"max.message.bytes": &limit})
	first := simpleBatch(0, 3, -1, 0)
	defer first.Release()
	bad := simpleBatch(3, 4, 2, 5000)
	defer bad.Release()
	res := env.put(t, pathDesc(topic), simpleSchema, batchMeta(first, checkpoint(1)), batch(bad))
	wantStatus(t, res, codes.InvalidArgument, string(flightsink.ReasonBadRow),
		"stream row 5 (batch 1, row 2)", "max.message.bytes (2000)", "durable_checkpoint=1 durable_rows=3")
	got := kafkatest.ReadCommitted(t, env.brokers, topic)
	if len(got) != 3 {
		t.Fatalf("topic has %d records, want the 3 of the first batch and none of the bad one", len(got))
	}
	for i, r := range got {
		if !strings.Contains(string(r.Value), `"id":`+itoa(i)+`,`) {
			t.Errorf("record %d is %s, want row %d", i, r.Value, i)
		}
	}
}

// TestMessageOverGRPCLimit: a record batch larger than
// flight.max_message_bytes is ResourceExhausted with the limit in the
// message. grpc-go ends such a stream itself, before the handler can set
// the reason trailer; the server logs the setting's name.
func TestMessageOverGRPCLimit(t *testing.T) {
	env := startServer(t, func(f *flightsink.Config, _ *kafka.Config) { f.MaxMessageBytes = 1 << 20 })
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	big := simpleBatch(0, 2, 0, 2<<20)
	defer big.Release()
	res := env.put(t, pathDesc(topic), simpleSchema, batch(big))
	if res.code != codes.ResourceExhausted || !strings.Contains(res.message, "1048576") {
		t.Fatalf("got %v %q, want ResourceExhausted naming the limit 1048576", res.code, res.message)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(env.logs(), "flight.max_message_bytes") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(env.logs(), "flight.max_message_bytes") {
		t.Errorf("server log does not name flight.max_message_bytes:\n%s", env.logs())
	}
}

// TestSchemalessStream: a first message without a schema is refused.
func TestSchemalessStream(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream, err := env.client.DoPut(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&flight.FlightData{FlightDescriptor: pathDesc(topic), AppMetadata: []byte(checkpoint(1))}); err != nil {
		t.Fatal(err)
	}
	_ = stream.CloseSend()
	wantStatus(t, readResults(stream), codes.InvalidArgument, string(flightsink.ReasonBadStream), "no schema")
}

// TestMalformedIPC: garbage in data_header is InvalidArgument and the server
// keeps serving.
func TestMalformedIPC(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream, err := env.client.DoPut(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.Send(&flight.FlightData{FlightDescriptor: pathDesc(topic), DataHeader: []byte("definitely not flatbuffers"), DataBody: []byte{1, 2, 3}})
	_ = stream.CloseSend()
	res := readResults(stream)
	if res.code != codes.InvalidArgument || res.reason != string(flightsink.ReasonBadStream) {
		t.Fatalf("got %v %q (%s), want InvalidArgument bad_stream", res.code, res.reason, res.message)
	}
	rec := simpleBatch(0, 1, -1, 0)
	defer rec.Release()
	wantOK(t, env.put(t, pathDesc(topic), simpleSchema, batch(rec)))
}

// TestTimestampOutsideTopicWindow: a row whose timestamp the topic would
// reject (message.timestamp.after.max.ms) is named before anything is
// produced, instead of failing a producer batch that other rows share.
func TestTimestampOutsideTopicWindow(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	hour := "3600000"
	kafkatest.CreateTopic(t, env.brokers, topic, 1, map[string]*string{"message.timestamp.after.max.ms": &hour})
	b := array.NewRecordBuilder(memory.DefaultAllocator, simpleSchema)
	defer b.Release()
	for i, at := range []time.Time{time.Now(), time.Now().Add(-48 * time.Hour), time.Now().Add(3 * time.Hour)} {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		b.Field(1).(*array.StringBuilder).Append("n")
		b.Field(2).(*array.Float64Builder).Append(0)
		b.Field(3).(*array.TimestampBuilder).Append(arrow.Timestamp(at.UnixMicro()))
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	res := env.put(t, cmdDesc(map[string]any{"topic": topic, "timestamp_field": "at"}), simpleSchema, batch(rec))
	wantStatus(t, res, codes.InvalidArgument, string(flightsink.ReasonBadRow), "stream row 2 (batch 0, row 2)", "message.timestamp.after.max.ms (3600000 ms)")
	if got := kafkatest.ReadCommitted(t, env.brokers, topic); len(got) != 0 {
		t.Fatalf("%d records written, want none", len(got))
	}
}

// TestCompactedTopicNeedsKeys: a compacted topic rejects records without a
// key, so a stream without key_field is refused at the start and a null key
// is a bad row.
func TestCompactedTopicNeedsKeys(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	compact := "compact"
	kafkatest.CreateTopic(t, env.brokers, topic, 1, map[string]*string{"cleanup.policy": &compact})
	rec := simpleBatch(0, 2, -1, 0)
	defer rec.Release()
	res := env.put(t, pathDesc(topic), simpleSchema, batch(rec))
	wantStatus(t, res, codes.InvalidArgument, string(flightsink.ReasonBadDescriptor), "compacted", `"key_field"`)

	nullable := arrow.NewSchema([]arrow.Field{{Name: "k", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, nullable)
	defer b.Release()
	b.Field(0).(*array.StringBuilder).Append("a")
	b.Field(0).AppendNull()
	withNull := b.NewRecordBatch()
	defer withNull.Release()
	res = env.put(t, cmdDesc(map[string]any{"topic": topic, "key_field": "k"}), nullable, batch(withNull))
	wantStatus(t, res, codes.InvalidArgument, string(flightsink.ReasonBadRow), "stream row 1 (batch 0, row 1)", "key is null")
}
