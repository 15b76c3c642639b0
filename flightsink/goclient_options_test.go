package flightsink_test

import (
	"context"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	client "github.com/flightsink/flightsink/clients/go/fsclient"
	"github.com/flightsink/flightsink/flightsink"
	"github.com/flightsink/flightsink/internal/kafkatest"
)

// TestGoClientReachesEveryDescriptorKey: the Go client's Descriptor has a
// field for each key the server parses, and the server's refusal of an
// unknown key (sent through Options) lists the same keys.
func TestGoClientReachesEveryDescriptorKey(t *testing.T) {
	var fields []string
	dt := reflect.TypeOf(client.Descriptor{})
	for i := 0; i < dt.NumField(); i++ {
		if name, _, _ := strings.Cut(dt.Field(i).Tag.Get("json"), ","); name != "-" {
			fields = append(fields, name)
		}
	}
	server := flightsink.DescriptorKeys()
	sort.Strings(fields)
	sort.Strings(server)
	if !slices.Equal(fields, server) {
		t.Errorf("the Go client's Descriptor has keys\n%v\nthe server parses\n%v", fields, server)
	}

	env := startServer(t)
	c, err := client.Dial(env.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = c.Open(ctx, client.Descriptor{Topic: "t", Options: map[string]any{"no_such_key": 1}}, simpleSchema)
	m := regexp.MustCompile(`known keys: ([^)]*)\)`).FindStringSubmatch(errString(err))
	if m == nil {
		t.Fatalf("an unknown key: %v; want the refusal listing the known keys", err)
	}
	listed := strings.Split(m[1], ", ")
	sort.Strings(listed)
	if !slices.Equal(listed, server) {
		t.Errorf("the server's refusal lists\n%v\nit parses\n%v", listed, server)
	}
	if _, err := c.Open(ctx, client.Descriptor{Topic: "t", Format: "json", Options: map[string]any{"format": "avro"}}, simpleSchema); err == nil ||
		!strings.Contains(err.Error(), `"format" is set both`) {
		t.Errorf("a key set twice: %v", err)
	}
}

// TestGoClientRecordShape: format, value_field and headers from the Go
// client's Descriptor reach the records.
func TestGoClientRecordShape(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	c, err := client.Dial(env.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	schema := arrow.NewSchema([]arrow.Field{{Name: "line", Type: arrow.BinaryTypes.String}}, nil)
	w, err := c.Open(ctx, client.Descriptor{Topic: topic, Format: "raw_string", ValueField: "line",
		Headers: map[string]string{"source": "etl"}}, schema)
	if err != nil {
		t.Fatal(err)
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	b.Field(0).(*array.StringBuilder).AppendValues([]string{"a", "b"}, nil)
	rec := b.NewRecordBatch()
	b.Release()
	err = w.Write(rec)
	rec.Release()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	recs := kafkatest.ReadCommitted(t, env.brokers, topic)
	if len(recs) != 2 || string(recs[0].Value) != "a" || string(recs[1].Value) != "b" ||
		len(recs[0].Headers) != 1 || recs[0].Headers[0].Key != "source" || string(recs[0].Headers[0].Value) != "etl" {
		t.Fatalf("records %+v", recs)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
