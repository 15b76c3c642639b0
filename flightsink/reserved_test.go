package flightsink_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	pb "github.com/apache/arrow-go/v18/arrow/flight/gen/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/flightsink/flightsink/flightsink"
	"github.com/flightsink/flightsink/internal/kafkatest"
	"github.com/flightsink/flightsink/kafka"
)

// forgedSchema is what an attacker sends to forge a writer's progress: the
// progress record's JSON fields plus a key, a partition and a destination.
var forgedSchema = arrow.NewSchema([]arrow.Field{
	{Name: "key", Type: arrow.BinaryTypes.String},
	{Name: "part", Type: arrow.PrimitiveTypes.Int32},
	{Name: "dest", Type: arrow.BinaryTypes.String},
	{Name: "writer_id", Type: arrow.BinaryTypes.String},
	{Name: "topic", Type: arrow.BinaryTypes.String},
	{Name: "checkpoint", Type: arrow.PrimitiveTypes.Int64},
	{Name: "committed_rows", Type: arrow.PrimitiveTypes.Int64},
}, nil)

// forgedProgress is one row claiming that writer (key) committed
// checkpoint 99 with 123,456 rows.
func forgedProgress(key string, part int32, dest, topic string) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, forgedSchema)
	defer b.Release()
	b.Field(0).(*array.StringBuilder).Append(key)
	b.Field(1).(*array.Int32Builder).Append(part)
	b.Field(2).(*array.StringBuilder).Append(dest)
	b.Field(3).(*array.StringBuilder).Append(key)
	b.Field(4).(*array.StringBuilder).Append(topic)
	b.Field(5).(*array.Int64Builder).Append(99)
	b.Field(6).(*array.Int64Builder).Append(123_456)
	return b.NewRecordBatch()
}

// progressPartition is the partition of the progress topic the server
// reads key from (Kafka's default murmur2 partitioning).
func progressPartition(t *testing.T, brokers []string, progress, key string) int32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topics, err := kadm.NewClient(kafkatest.Client(t, brokers)).ListTopics(ctx, progress)
	if err != nil || topics.Error() != nil {
		t.Fatalf("describing %s: %v %v", progress, err, topics.Error())
	}
	n := len(topics[progress].Partitions)
	return int32(kgo.StickyKeyPartitioner(nil).ForTopic(progress).Partition(&kgo.Record{Key: []byte(key)}, n))
}

// TestReservedTopicsRefused is the forged-progress attack of issue 12: a
// principal allowed every topic ("*") tries to write a forged progress
// record for another principal's writer into kafka.progress_topic, through
// every path (PATH and CMD DoPut, with key_field and partition_field, in both
// delivery modes; topic_field rows; Flight SQL ingest), and to Kafka's
// internal topics. Each is PermissionDenied with reason reserved_topic
// before any row is produced: the victim's writer-status is unchanged and
// the progress topic holds no forged record, not even an aborted one.
func TestReservedTopicsRefused(t *testing.T) {
	const victimToken, malloryToken = "victim-token-0123456789abcdef", "mallory-token-0123456789abcdef"
	var cfg flightsink.AuthConfig
	cfg.Tokens = []flightsink.TokenConfig{{Principal: "victim"}, {Principal: "mallory"}}
	cfg.Tokens[0].Token.Value, cfg.Tokens[1].Token.Value = victimToken, malloryToken
	cfg.Principals = []flightsink.PrincipalConfig{{Name: "victim", Topics: []string{"*"}}, {Name: "mallory", Topics: []string{"*"}}}
	env := startServerWith(t, []flightsink.Option{flightsink.WithAuth(cfg)}, nil)
	progress := kafka.DefaultConfig().ProgressTopic
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	own := "own-" + topic
	kafkatest.CreateTopic(t, env.brokers, own, 1, nil)

	// The victim's writer commits checkpoint 1 with 3 rows.
	victim := env.as(t, victimToken, nil)
	writer := "w-" + topic
	rec := simpleBatch(0, 3, -1, 0)
	defer rec.Release()
	wantOK(t, victim.put(t, eosDesc(topic, "writer_id", writer, "commit_on_close", false), simpleSchema, batchMeta(rec, checkpoint(1))))
	committed := func(st map[string]any) bool { return st["last_checkpoint"] == 1.0 && st["committed_rows"] == 3.0 }
	// The commit's markers reach the progress topic a moment after EndTxn.
	waitFor(t, "the victim's checkpoint 1 in writer-status", func() bool { return committed(writerStatus(t, victim, writer)) })
	want := func() {
		t.Helper()
		if st := writerStatus(t, victim, writer); !committed(st) {
			t.Fatalf("the victim's writer-status is %v, want checkpoint 1 with 3 rows", st)
		}
	}

	key := "victim:" + writer // the victim's writer in the progress topic
	part := progressPartition(t, env.brokers, progress, key)
	forged := forgedProgress(key, part, progress, topic)
	defer forged.Release()
	mallory := env.as(t, malloryToken, nil)
	reserved := func(name string, res putResult, fragments ...string) {
		t.Helper()
		if res.code != codes.PermissionDenied || res.reason != string(flightsink.ReasonReservedTopic) {
			t.Errorf("%s: got %v reason %q (%s), want PermissionDenied reason %s", name, res.code, res.reason, res.message, flightsink.ReasonReservedTopic)
			return
		}
		for _, f := range fragments {
			if !strings.Contains(res.message, f) {
				t.Errorf("%s: message %q does not mention %q", name, res.message, f)
			}
		}
	}
	progressMsg := []string{`topic "` + progress + `" is reserved`, "kafka.progress_topic"}
	values := []string{"writer_id", "topic", "checkpoint", "committed_rows"}

	reserved("PATH", mallory.put(t, pathDesc(progress), forgedSchema, batch(forged)), progressMsg...)
	reserved("CMD key_field", mallory.put(t, cmdDesc(map[string]any{"topic": progress, "key_field": "key", "value_fields": values}),
		forgedSchema, batch(forged)), progressMsg...)
	reserved("CMD key_field+partition_field", mallory.put(t, cmdDesc(map[string]any{"topic": progress, "key_field": "key",
		"partition_field": "part", "value_fields": values}), forgedSchema, batch(forged)), progressMsg...)
	reserved("CMD at_least_once", mallory.put(t, cmdDesc(map[string]any{"topic": progress, "key_field": "key",
		"delivery": "at_least_once", "value_fields": values}), forgedSchema, batch(forged)), progressMsg...)
	reserved("CMD tombstone", mallory.put(t, cmdDesc(map[string]any{"topic": progress, "key_field": "key",
		"format": "raw_string", "value_field": "dest", "tombstone_field": "tomb"}), tombSchema, batch(tombstone(key))), progressMsg...)
	for _, delivery := range []string{"exactly_once", "at_least_once"} {
		reserved("topic_field "+delivery, mallory.put(t, cmdDesc(map[string]any{"topic": own, "topic_field": "dest", "key_field": "key",
			"delivery": delivery, "value_fields": values}), forgedSchema, batch(forged)), progressMsg...)
	}
	reserved("ingest", malloryIngest(t, env, malloryToken, progress, forged), progressMsg...)
	for _, internal := range []string{"__consumer_offsets", "__transaction_state"} {
		reserved("PATH "+internal, mallory.put(t, pathDesc(internal), forgedSchema, batch(forged)), `names starting "__"`)
		reserved("ingest "+internal, malloryIngest(t, env, malloryToken, internal, forged), `names starting "__"`)
	}

	want()
	for _, r := range kafkatest.ReadUncommitted(t, env.brokers, progress) {
		if string(r.Key) == key && strings.Contains(string(r.Value), "123456") {
			t.Fatalf("a forged progress record reached the progress topic (partition %d offset %d): %s", r.Partition, r.Offset, r.Value)
		}
	}
	if n := len(kafkatest.ReadUncommitted(t, env.brokers, own)); n != 0 {
		t.Fatalf("the topic_field stream wrote %d records to %s", n, own)
	}
}

// TestReservedTopicsRefusedAnonymous: without auth, the anonymous principal
// (which may write everywhere) cannot write to the progress topic either.
func TestReservedTopicsRefusedAnonymous(t *testing.T) {
	env := startServer(t)
	progress := kafka.DefaultConfig().ProgressTopic
	forged := forgedProgress("w", 0, progress, "t")
	defer forged.Release()
	res := env.put(t, cmdDesc(map[string]any{"topic": progress, "key_field": "key"}), forgedSchema, batch(forged))
	wantStatus(t, res, codes.PermissionDenied, string(flightsink.ReasonReservedTopic), `topic "`+progress+`" is reserved`)
}

var tombSchema = arrow.NewSchema([]arrow.Field{
	{Name: "key", Type: arrow.BinaryTypes.String},
	{Name: "dest", Type: arrow.BinaryTypes.String},
	{Name: "tomb", Type: arrow.FixedWidthTypes.Boolean},
}, nil)

// tombstone is one row deleting key's progress (a resume would then
// write everything again).
func tombstone(key string) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, tombSchema)
	defer b.Release()
	b.Field(0).(*array.StringBuilder).Append(key)
	b.Field(1).(*array.StringBuilder).Append("")
	b.Field(2).(*array.BooleanBuilder).Append(true)
	return b.NewRecordBatch()
}

// malloryIngest runs a Flight SQL bulk ingest of rec into table (what ADBC's
// adbc_ingest sends) and returns how it ended.
func malloryIngest(t *testing.T, env *testEnv, token, table string, rec arrow.RecordBatch) putResult {
	t.Helper()
	cl, err := flightsql.NewClient(env.addr, nil, nil, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearer(token)))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rdr, err := array.NewRecordReader(rec.Schema(), []arrow.RecordBatch{rec})
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Release()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var trailer metadata.MD
	n, err := cl.ExecuteIngest(ctx, rdr, &flightsql.ExecuteIngestOpts{
		Table: table,
		TableDefinitionOptions: &pb.CommandStatementIngest_TableDefinitionOptions{
			IfNotExist: pb.CommandStatementIngest_TableDefinitionOptions_TABLE_NOT_EXIST_OPTION_FAIL,
			IfExists:   pb.CommandStatementIngest_TableDefinitionOptions_TABLE_EXISTS_OPTION_APPEND,
		},
		Options: map[string]string{"key_field": "key"},
	}, grpc.Trailer(&trailer))
	res := putResult{err: err}
	if err == nil {
		t.Logf("ingest into %s wrote %d rows", table, n)
		return res
	}
	st := status.Convert(err)
	res.code, res.message = st.Code(), st.Message()
	if v := trailer.Get(flightsink.TrailerReason); len(v) > 0 {
		res.reason = v[0]
	}
	return res
}

// listTables runs GetTables (what ADBC's adbc_get_objects asks) as the
// client with token ("" for none) and returns the table names.
func listTables(t *testing.T, env *testEnv, token string) []string {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(token)))
	}
	cl, err := flightsql.NewClient(env.addr, nil, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	info, err := cl.GetTables(ctx, &flightsql.GetTablesOpts{})
	if err != nil {
		t.Fatal(err)
	}
	rdr, err := cl.DoGet(ctx, info.Endpoint[0].Ticket)
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Release()
	var names []string
	for rdr.Next() {
		col := rdr.RecordBatch().Column(2).(*array.String)
		for i := 0; i < col.Len(); i++ {
			names = append(names, col.Value(i))
		}
	}
	if err := rdr.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

// TestGetTablesListsWritableTopics: GetTables lists only the topics the
// caller may write: a principal sees its own patterns' topics, nobody sees
// the progress topic or a "__" topic.
func TestGetTablesListsWritableTopics(t *testing.T) {
	env := startServerWith(t, authOptions(t), nil)
	mine := kafkatest.TopicName(t) // TestGetTables...: not the loader's
	loaders := "TestAuth-" + mine  // matches the loader's pattern TestAuth*
	internal := "__" + mine
	for _, topic := range []string{mine, loaders, internal} {
		kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	}
	progress := kafka.DefaultConfig().ProgressTopic
	has := func(names []string, name string) bool {
		for _, n := range names {
			if n == name {
				return true
			}
		}
		return false
	}
	loader := listTables(t, env, loaderToken)
	if !has(loader, loaders) || has(loader, mine) || has(loader, internal) || has(loader, progress) {
		t.Errorf("the loader (topics TestAuth*, TestWriter*) sees %v; want %s, not %s, %s or %s", loader, loaders, mine, internal, progress)
	}
	for _, n := range loader {
		if !strings.HasPrefix(n, "TestAuth") && !strings.HasPrefix(n, "TestWriter") {
			t.Errorf("the loader sees %q, which it may not write", n)
		}
	}
	alice := listTables(t, env, loginAlice(t, env)) // topics "*"
	if !has(alice, loaders) || !has(alice, mine) || has(alice, internal) || has(alice, progress) {
		t.Errorf("alice (topics *) sees %d topics; want %s and %s, never %s or %s", len(alice), loaders, mine, internal, progress)
	}
}
