package flightsink_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"

	client "github.com/flightsink/flightsink/clients/go/fsclient"

	"github.com/flightsink/flightsink/internal/kafkatest"
)

var partSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "part", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
}, nil)

// partBatch is rows first..first+n-1; the rows in bad name partition 9
// (the test topics have 2), the others partition 0.
func partBatch(first, n int, bad ...int) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, partSchema)
	defer b.Release()
	isBad := map[int]bool{}
	for _, r := range bad {
		isBad[r] = true
	}
	for i := first; i < first+n; i++ {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		if isBad[i] {
			b.Field(1).(*array.Int32Builder).Append(9)
		} else {
			b.Field(1).(*array.Int32Builder).Append(0)
		}
	}
	return b.NewRecordBatch()
}

func rowIDs(t *testing.T, recs []map[string]any) []int {
	t.Helper()
	var out []int
	for _, r := range recs {
		out = append(out, int(r["id"].(float64)))
	}
	sort.Ints(out)
	return out
}

func values(t *testing.T, env *testEnv, topic string) ([]map[string]any, []map[string]string) {
	t.Helper()
	var vals []map[string]any
	var hdrs []map[string]string
	for _, r := range kafkatest.ReadCommitted(t, env.brokers, topic) {
		var v map[string]any
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatalf("%s: %q is not JSON: %v", topic, r.Value, err)
		}
		vals = append(vals, v)
		h := map[string]string{}
		for _, x := range r.Headers {
			h[x.Key] = string(x.Value)
		}
		hdrs = append(hdrs, h)
	}
	return vals, hdrs
}

// TestDeadLetterRows: under on_bad_row dead_letter, rows that cannot
// become records (here: a partition out of range) go to the dead-letter
// topic as JSON, with headers naming the error, in the same transaction as
// the good rows; the acks count them; an aborted stream leaves nothing in
// either topic.
func TestDeadLetterRows(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 2, nil)
	kafkatest.CreateTopic(t, env.brokers, topic+".dlq", 1, nil)
	desc := cmdDesc(map[string]any{"topic": topic, "partition_field": "part", "on_bad_row": "dead_letter"})
	rec := partBatch(0, 10, 3, 7)
	defer rec.Release()
	res := env.put(t, desc, partSchema, batchMeta(rec, checkpoint(1)))
	wantOK(t, res)
	ack := res.acks[1]
	if ack["type"] != "checkpoint" || ack["rows"] != 10.0 || ack["dead_lettered_rows"] != 2.0 || ack["skipped_rows"] != 0.0 {
		t.Fatalf("checkpoint ack %v, want 10 rows of which 2 dead-lettered", ack)
	}
	if done := res.acks[2]; done["dead_lettered_rows"] != 2.0 || done["total_rows"] != 10.0 {
		t.Fatalf("done %v", done)
	}
	good, _ := values(t, env, topic)
	if got := rowIDs(t, good); fmt.Sprint(got) != "[0 1 2 4 5 6 8 9]" {
		t.Fatalf("topic holds ids %v", got)
	}
	dead, hdrs := values(t, env, topic+".dlq")
	if got := rowIDs(t, dead); fmt.Sprint(got) != "[3 7]" {
		t.Fatalf("dead-letter topic holds ids %v", got)
	}
	for i, h := range hdrs {
		row := fmt.Sprint(dead[i]["id"])
		want := map[string]string{"flightsink-reason": "bad_row", "flightsink-column": "part", "flightsink-row": row,
			"flightsink-source-topic": topic, "flightsink-writer": "", "flightsink-checkpoint": "1",
			"flightsink-error": fmt.Sprintf("its partition_field %q is 9, but topic %q has partitions 0 to 1", "part", topic)}
		if fmt.Sprint(h) != fmt.Sprint(want) {
			t.Fatalf("dead-letter headers %v, want %v", h, want)
		}
	}
	if dead[0]["part"] != 9.0 {
		t.Fatalf("dead-letter value %v is not the row", dead[0])
	}

	// a stream that dead-letters, then aborts: neither topic shows it
	bad := partBatch(100, 5, 101)
	defer bad.Release()
	res = env.put(t, desc, partSchema, batch(bad), metaOnly(`{"abort":"changed my mind"}`))
	wantStatus(t, res, codes.Aborted, "client_abort")
	if good, _ := values(t, env, topic); len(good) != 8 {
		t.Fatalf("%d records in the topic after the aborted stream, want 8", len(good))
	}
	if dead, _ := values(t, env, topic+".dlq"); len(dead) != 2 {
		t.Fatalf("%d records in the dead-letter topic after the aborted stream, want 2", len(dead))
	}
}

// TestSkipRowsAndCap: on_bad_row skip leaves bad rows out and counts them;
// max_bad_rows turns too many into a failure of the batch, which an
// at-least-once stream rejects before producing any of it.
func TestSkipRowsAndCap(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 2, nil)
	rec := partBatch(0, 10, 2)
	defer rec.Release()
	res := env.put(t, cmdDesc(map[string]any{"topic": topic, "delivery": "at_least_once", "partition_field": "part",
		"on_bad_row": "skip", "max_bad_rows": 1}), partSchema, batch(rec))
	wantOK(t, res)
	if done := res.acks[1]; done["skipped_rows"] != 1.0 || done["total_rows"] != 10.0 {
		t.Fatalf("done %v, want 1 of 10 rows skipped", done)
	}
	worse := partBatch(10, 10, 11, 12)
	defer worse.Release()
	res = env.put(t, cmdDesc(map[string]any{"topic": topic, "delivery": "at_least_once", "partition_field": "part",
		"on_bad_row": "skip", "max_bad_rows": 1}), partSchema, batch(worse))
	wantStatus(t, res, codes.InvalidArgument, "bad_row", "2 bad rows, more than max_bad_rows (1) allows", "stream row 2 (batch 0, row 2)")
	if got, _ := values(t, env, topic); len(got) != 9 {
		t.Fatalf("%d records in the topic, want the first stream's 9", len(got))
	}
	res = env.put(t, cmdDesc(map[string]any{"topic": topic, "on_bad_row": "skip", "max_bad_rows": 0.5}), partSchema, batch(worse))
	wantOK(t, res) // a fraction: 2 of 10 rows
}

// TestReportOffsets: with report_offsets, each checkpoint ack and done
// carry, per topic and partition, the first and last offset of the records
// written since the previous ack: what a consumer sees of the same records.
func TestReportOffsets(t *testing.T) {
	env := startServer(t)
	for _, delivery := range []string{"exactly_once", "at_least_once"} {
		t.Run(delivery, func(t *testing.T) {
			topic := kafkatest.TopicName(t)
			kafkatest.CreateTopic(t, env.brokers, topic, 2, nil)
			a, b, c := simpleBatch(0, 10, -1, 0), simpleBatch(10, 10, -1, 0), simpleBatch(20, 5, -1, 0)
			defer a.Release()
			defer b.Release()
			defer c.Release()
			res := env.put(t, cmdDesc(map[string]any{"topic": topic, "delivery": delivery, "key_field": "name", "report_offsets": true}),
				simpleSchema, batchMeta(a, checkpoint(1)), batchMeta(b, checkpoint(2)), batch(c))
			wantOK(t, res)
			if len(res.acks) != 4 {
				t.Fatalf("acks %v", res.acks)
			}
			// what a consumer sees: each id's partition and offset
			want := map[int]map[string][2]int64{} // unit (1, 2, tail 3) → partition → [first, last]
			for _, r := range kafkatest.ReadCommitted(t, env.brokers, topic) {
				var v map[string]any
				if err := json.Unmarshal(r.Value, &v); err != nil {
					t.Fatal(err)
				}
				unit := int(v["id"].(float64))/10 + 1
				p := fmt.Sprint(r.Partition)
				if want[unit] == nil {
					want[unit] = map[string][2]int64{}
				}
				rng, ok := want[unit][p]
				if !ok {
					rng = [2]int64{r.Offset, r.Offset}
				}
				want[unit][p] = [2]int64{min(rng[0], r.Offset), max(rng[1], r.Offset)}
			}
			for unit, ack := range []map[string]any{res.acks[1], res.acks[2], res.acks[3]} {
				got := map[string][2]int64{}
				offs, _ := ack["offsets"].(map[string]any)
				parts, _ := offs[topic].(map[string]any)
				for p, r := range parts {
					rr := r.([]any)
					got[p] = [2]int64{int64(rr[0].(float64)), int64(rr[1].(float64))}
				}
				if fmt.Sprint(got) != fmt.Sprint(want[unit+1]) {
					t.Fatalf("%s %d reports offsets %v; the consumer saw %v", ack["type"], unit+1, got, want[unit+1])
				}
			}
		})
	}
}

// TestGoClientBadRowsAndOffsets: the Go client asks for dead-lettering and
// offsets, and its Ack and Done carry the counts and the offsets.
func TestGoClientBadRowsAndOffsets(t *testing.T) {
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 2, nil)
	kafkatest.CreateTopic(t, env.brokers, topic+".dlq", 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Dial(env.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w, err := c.Open(ctx, client.Descriptor{Topic: topic, PartitionField: "part", OnBadRow: "dead_letter", ReportOffsets: true}, partSchema)
	if err != nil {
		t.Fatal(err)
	}
	rec := partBatch(0, 10, 4)
	defer rec.Release()
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	ack, err := w.Checkpoint(ctx)
	if err != nil || ack.Rows != 10 || ack.DeadLetteredRows != 1 || ack.Offsets == nil {
		t.Fatalf("Checkpoint = %+v, %v; want 10 rows, 1 dead-lettered, offsets", ack, err)
	}
	parts := (*ack.Offsets)[topic]
	if rng, ok := parts["0"]; !ok || rng[1]-rng[0] != 8 || len((*ack.Offsets)[topic+".dlq"]) != 1 {
		t.Fatalf("offsets %v: want 9 records in %s partition 0 and one dead-letter record", *ack.Offsets, topic)
	}
	done, err := w.Close(ctx)
	if err != nil || done.DeadLetteredRows != 1 || done.TotalRows != 10 {
		t.Fatalf("Close = %+v, %v", done, err)
	}
}
