package flightsink_test

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flightsink/flightsink/internal/kafkatest"
)

// TestAllTypesRoundTrip streams three batches covering every supported type
// with two checkpoints, reads the acks, then consumes the topic and compares
// every record's value, key, timestamp and partition with what was sent.
func TestAllTypesRoundTrip(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 3, nil)

	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	var rows []allTypesRow
	var steps []step
	sizes := []int{40, 25, 35}
	first := 0
	for i, n := range sizes {
		rec, r := makeAllTypesBatch(mem, first, n)
		defer rec.Release()
		rows = append(rows, r...)
		first += n
		switch i {
		case 0:
			steps = append(steps, batchMeta(rec, checkpoint(1)))
		case 1:
			steps = append(steps, batch(rec), metaOnly(checkpoint(2))) // pyarrow's write_metadata
		default:
			steps = append(steps, batch(rec)) // the tail, made durable by the clean close
		}
	}
	desc := cmdDesc(map[string]any{"topic": topic, "key_field": "user", "timestamp_field": "ts_ms", "delivery": "at_least_once"})
	before := time.Now().Add(-time.Second)
	res := env.put(t, desc, allTypesSchema, steps...)
	wantOK(t, res)

	// Acks: ready, checkpoint 1 (40 rows), checkpoint 2 (25 more), done.
	if len(res.acks) != 4 {
		t.Fatalf("got %d acks, want 4: %v", len(res.acks), res.acks)
	}
	wantAck(t, res.acks[0], map[string]any{"type": "ready", "protocol": 1.0, "delivery": "at_least_once", "writer_id": nil, "last_checkpoint": nil, "committed_rows": 0.0})
	wantAck(t, res.acks[1], map[string]any{"type": "checkpoint", "checkpoint": 1.0, "rows": 40.0, "total_rows": 40.0})
	wantAck(t, res.acks[2], map[string]any{"type": "checkpoint", "checkpoint": 2.0, "rows": 25.0, "total_rows": 65.0})
	wantAck(t, res.acks[3], map[string]any{"type": "done", "total_rows": 100.0, "last_checkpoint": 2.0})

	got := kafkatest.ReadCommitted(t, env.brokers, topic)
	if len(got) != len(rows) {
		t.Fatalf("topic has %d records, want %d", len(got), len(rows))
	}
	byID := map[int64]*kgo.Record{}
	for _, r := range got {
		v, err := normalize(r.Value)
		if err != nil {
			t.Fatalf("record value is not JSON: %v: %s", err, r.Value)
		}
		id, _ := strconv.ParseInt(string(v.(map[string]any)["id"].(jsonNumber)), 10, 64)
		byID[id] = r
	}
	for _, row := range rows {
		r, ok := byID[row.id]
		if !ok {
			t.Fatalf("row %d missing from the topic", row.id)
		}
		want, err := expectedJSON(row.fields)
		if err != nil {
			t.Fatal(err)
		}
		gotV, _ := normalize(r.Value)
		if !reflect.DeepEqual(gotV, want) {
			t.Errorf("row %d value:\n got %s\nwant %v", row.id, r.Value, want)
		}
		// Column order is the schema's.
		if keys := jsonKeys(r.Value); !reflect.DeepEqual(keys, schemaNames(allTypesSchema)) {
			t.Errorf("row %d: keys in order %v, want %v", row.id, keys, schemaNames(allTypesSchema))
		}
		switch {
		case row.user == nil && r.Key != nil:
			t.Errorf("row %d: null key column gave key %q, want no key", row.id, r.Key)
		case row.user != nil && string(r.Key) != *row.user:
			t.Errorf("row %d: key %q, want %q", row.id, r.Key, *row.user)
		}
		if row.user != nil {
			if want := javaPartition([]byte(*row.user), 3); r.Partition != want {
				t.Errorf("row %d: key %q in partition %d, want %d (Java's murmur2)", row.id, *row.user, r.Partition, want)
			}
		}
		if row.tsMs != nil {
			if r.Timestamp.UnixMilli() != *row.tsMs {
				t.Errorf("row %d: timestamp %d, want %d", row.id, r.Timestamp.UnixMilli(), *row.tsMs)
			}
		} else if r.Timestamp.Before(before) || r.Timestamp.After(time.Now().Add(time.Minute)) {
			t.Errorf("row %d: null timestamp column gave %v, want the produce time", row.id, r.Timestamp)
		}
	}
}

func wantAck(t *testing.T, got, want map[string]any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ack %v, want %v", got, want)
	}
}

func schemaNames(s *arrow.Schema) []string {
	var out []string
	for _, f := range s.Fields() {
		out = append(out, f.Name)
	}
	return out
}

// TestPartitionsMatchJavaMurmur2 checks that keyed records land where the
// Java client would put them, for keys with known murmur2 values.
func TestPartitionsMatchJavaMurmur2(t *testing.T) {
	// Values from Kafka's own UtilsTest.testMurmur2.
	known := map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	}
	for k, v := range known {
		if got := murmur2([]byte(k)); got != v {
			t.Fatalf("test murmur2(%q) = %d, want %d", k, got, v)
		}
	}
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	const partitions = 7
	kafkatest.CreateTopic(t, env.brokers, topic, partitions, nil)
	schema := arrow.NewSchema([]arrow.Field{{Name: "k", Type: arrow.BinaryTypes.String}, {Name: "n", Type: arrow.PrimitiveTypes.Int64}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	keys := []string{}
	for k := range known {
		keys = append(keys, k)
	}
	for i := 0; i < 50; i++ {
		keys = append(keys, fmt.Sprintf("customer-%d", i))
	}
	sort.Strings(keys)
	for i, k := range keys {
		b.Field(0).(*array.StringBuilder).Append(k)
		b.Field(1).(*array.Int64Builder).Append(int64(i))
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	wantOK(t, env.put(t, cmdDesc(map[string]any{"topic": topic, "key_field": "k"}), schema, batch(rec)))
	got := kafkatest.ReadCommitted(t, env.brokers, topic)
	if len(got) != len(keys) {
		t.Fatalf("got %d records, want %d", len(got), len(keys))
	}
	for _, r := range got {
		if want := javaPartition(r.Key, partitions); r.Partition != want {
			t.Errorf("key %q in partition %d, Java puts it in %d", r.Key, r.Partition, want)
		}
	}
}

// murmur2 is Kafka's Java Utils.murmur2, written from its definition.
func murmur2(data []byte) int32 {
	const seed, m, r = uint32(0x9747b28c), uint32(0x5bd1e995), 24
	n := len(data)
	h := seed ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := binary.LittleEndian.Uint32(data[i:])
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := data[n&^3:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// javaPartition is the Java client's default partition for a keyed record.
func javaPartition(key []byte, partitions int32) int32 {
	return (murmur2(key) & 0x7fffffff) % partitions
}
