package flightsink_test

import (
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/flightsink/flightsink/flightsink"
	"github.com/flightsink/flightsink/internal/kafkatest"
	"github.com/flightsink/flightsink/kafka/encode"
)

// TestProtobufWithoutRegistry: without a schema registry, format protobuf
// writes bare messages (the key a message too, with key_format protobuf)
// and logs the .proto a consumer needs.
func TestProtobufWithoutRegistry(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	rec := eventBatch([]event{{id: 1, k: "a", body: str("hello")}, {id: 2, k: "b"}})
	defer rec.Release()
	wantOK(t, env.put(t, cmdDesc(map[string]any{"topic": topic, "format": "protobuf", "value_fields": []string{"id", "body", "at", "price"},
		"key_fields": []string{"k"}, "key_format": "protobuf"}), eventSchema, batch(rec)))
	enc, err := encode.NewProtobuf(projected(eventSchema, "id", "body", "at", "price"), "flightsink", recordName(topic))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(env.logs(), "proto_schema") || !strings.Contains(env.logs(), "optional string body = 2;") {
		t.Errorf("the stream open line does not carry the .proto:\n%s", env.logs())
	}
	got := kafkatest.ReadCommitted(t, env.brokers, topic)
	if len(got) != 2 {
		t.Fatalf("%d records", len(got))
	}
	for i, r := range got {
		msg := dynamicpb.NewMessage(enc.Descriptor())
		if err := proto.Unmarshal(r.Value, msg); err != nil {
			t.Fatalf("record %d: % x: %v", i, r.Value, err)
		}
		f := msg.Descriptor().Fields()
		if id := msg.Get(f.ByName("id")).Int(); id != int64(i+1) {
			t.Errorf("record %d id %d", i, id)
		}
		if msg.Has(f.ByName("body")) != (i == 0) || msg.Get(f.ByName("price")).String() != []string{"20.00", "20.01"}[i] {
			t.Errorf("record %d: %v", i, msg)
		}
		// the key message: field 1 (k), a string
		if want := append([]byte{0x0a, 1}, "ab"[i]); string(r.Key) != string(want) {
			t.Errorf("record %d key % x, want % x", i, r.Key, want)
		}
	}
}

// TestJSONSchemaNeedsRegistry: json_schema on a server without a schema
// registry is refused before anything is written, pointing at "json".
func TestJSONSchemaNeedsRegistry(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	rec := eventBatch([]event{{id: 1, k: "a"}})
	defer rec.Release()
	res := env.put(t, cmdDesc(map[string]any{"topic": topic, "format": "json_schema"}), eventSchema, batch(rec))
	wantStatus(t, res, codes.InvalidArgument, string(flightsink.ReasonBadDescriptor), "needs a schema registry", `use "json"`)
	res = env.put(t, cmdDesc(map[string]any{"topic": topic, "key_field": "k", "key_format": "json_schema"}), eventSchema, batch(rec))
	wantStatus(t, res, codes.InvalidArgument, string(flightsink.ReasonBadDescriptor), `"key_format": "json_schema" needs a schema registry`)
	if got := kafkatest.ReadCommitted(t, env.brokers, topic); len(got) != 0 {
		t.Errorf("%d records written", len(got))
	}
}

// projected is the schema of the named columns of schema.
func projected(schema *arrow.Schema, names ...string) *arrow.Schema {
	fields := make([]arrow.Field, len(names))
	for i, n := range names {
		fields[i] = schema.Field(schema.FieldIndices(n)[0])
	}
	return arrow.NewSchema(fields, nil)
}

// recordName is the name the derived schemas give a topic's record.
func recordName(topic string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' {
			return r
		}
		return '_'
	}, topic)
}
