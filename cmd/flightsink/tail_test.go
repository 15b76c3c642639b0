package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/flightsink/flightsink/internal/kafkatest"
)

// produce writes records to a new topic and returns its name.
func produce(t *testing.T, brokers []string, recs ...*kgo.Record) string {
	t.Helper()
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, brokers, topic, 1, nil)
	cl := kafkatest.Client(t, brokers)
	for _, r := range recs {
		r.Topic = topic
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return topic
}

// tailLines runs tail and returns its JSON lines, decoded.
func tailLines(t *testing.T, args ...string) []map[string]any {
	t.Helper()
	code, stdout, stderr := run(t, nil, append([]string{"tail"}, args...)...)
	if code != 0 {
		t.Fatalf("tail %v: exit %d: %s", args, code, stderr)
	}
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("tail printed %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// TestTailFailsFast: unreachable brokers and a missing topic are errors
// with exit 1, as kcat's are, not an empty output that reads as an empty
// topic.
func TestTailFailsFast(t *testing.T) {
	b := newFakeBroker(t)
	addr := b.addr()
	b.l.Close() // nothing listens there now
	code, stdout, stderr := run(t, nil, "tail", "--brokers", addr, "--idle", "1s", "--timeout", "2s", "orders")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "no broker of ["+addr+"] answered") {
		t.Errorf("unreachable brokers: exit %d, stdout %q, stderr %q; want 1 and an error naming the brokers", code, stdout, stderr)
	}
	brokers, _ := kafkatest.Brokers(t)
	missing := kafkatest.TopicName(t)
	code, _, stderr = run(t, nil, "tail", "--brokers", strings.Join(brokers, ","), "--idle", "1s", missing)
	if code != 1 || !strings.Contains(stderr, fmt.Sprintf("topic %q does not exist", missing)) {
		t.Errorf("a missing topic: exit %d, stderr %q; want 1 and an error naming the topic", code, stderr)
	}
}

// TestTailShowsHeadersAndTakesFlagsAfterTheTopic: flags may follow the
// topic; headers are shown (text as text, other bytes as base64).
func TestTailShowsHeadersAndTakesFlagsAfterTheTopic(t *testing.T) {
	brokers, _ := kafkatest.Brokers(t)
	topic := produce(t, brokers,
		&kgo.Record{Key: []byte("ann"), Value: []byte(`{"id":1}`), Headers: []kgo.RecordHeader{
			{Key: "source", Value: []byte("etl")}, {Key: "blob", Value: []byte{0xff, 0x00}}}},
		&kgo.Record{Value: []byte("plain text")})
	lines := tailLines(t, topic, "--idle", "2s", "--brokers", strings.Join(brokers, ","))
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2: %v", len(lines), lines)
	}
	got, _ := json.Marshal(lines[0]["headers"])
	if want := `[{"key":"source","value":"etl"},{"key":"blob","value_base64":"/wA="}]`; string(got) != want {
		t.Errorf("headers %s, want %s", got, want)
	}
	if lines[0]["key"] != "ann" || lines[1]["value"] != "plain text" || lines[1]["headers"] != nil {
		t.Errorf("records %v", lines)
	}
}

// TestTailDecodesAvroThroughTheRegistry: values framed by a schema
// registry (magic byte, schema id, Avro datum) are shown as JSON with
// --registry, decimals with their scale and timestamps as RFC 3339. Uses
// the registry make test starts, else a stand-in serving the schema.
func TestTailDecodesAvroThroughTheRegistry(t *testing.T) {
	const schemaText = `{"type":"record","name":"order","fields":[
		{"name":"id","type":"long"},
		{"name":"user","type":["null","string"]},
		{"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
		{"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}}]}`
	url, id := registryWithSchema(t, schemaText)
	schema := avro.MustParse(schemaText)
	datum, err := avro.Marshal(schema, map[string]any{"id": int64(7), "user": "ann",
		"amount": mustRat(t, "12.30"), "ts": time.UnixMilli(1767322800000).UTC()})
	if err != nil {
		t.Fatal(err)
	}
	framed := append([]byte{0, 0, 0, 0, 0}, datum...)
	binary.BigEndian.PutUint32(framed[1:5], uint32(id))
	brokers, _ := kafkatest.Brokers(t)
	topic := produce(t, brokers, &kgo.Record{Value: framed})

	lines := tailLines(t, "--brokers", strings.Join(brokers, ","), "--idle", "2s", "--registry", url, topic)
	got, _ := json.Marshal(lines[0]["value"])
	if want := `{"amount":"12.30","id":7,"ts":"2026-01-02T03:00:00Z","user":"ann"}`; string(got) != want {
		t.Errorf("value %s, want %s", got, want)
	}
	// Without --registry the output says how to decode them.
	code, _, stderr := run(t, nil, "tail", "--brokers", strings.Join(brokers, ","), "--idle", "2s", topic)
	if code != 0 || !strings.Contains(stderr, "pass --registry URL") {
		t.Errorf("without --registry: exit %d, stderr %q; want a hint naming --registry", code, stderr)
	}
}

// registryWithSchema registers schemaText in the test registry
// (FLIGHTSINK_TEST_REGISTRY) or serves it from a stand-in, and returns the
// registry's URL and the schema id.
func registryWithSchema(t *testing.T, schemaText string) (string, int) {
	t.Helper()
	if url := os.Getenv("FLIGHTSINK_TEST_REGISTRY"); url != "" {
		cl, err := sr.NewClient(sr.URLs(url))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ss, err := cl.CreateSchema(ctx, kafkatest.TopicName(t)+"-value", sr.Schema{Schema: schemaText, Type: sr.TypeAvro})
		if err != nil {
			t.Fatal(err)
		}
		return url, ss.ID
	}
	t.Log("FLIGHTSINK_TEST_REGISTRY is not set: a stand-in registry serves the schema")
	const id = 42
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != fmt.Sprintf("/schemas/ids/%d", id) {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"schema": schemaText})
	}))
	t.Cleanup(srv.Close)
	return srv.URL, id
}

func mustRat(t *testing.T, s string) *big.Rat {
	t.Helper()
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatal(s)
	}
	return r
}
