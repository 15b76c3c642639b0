package flightsink_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	pb "github.com/apache/arrow-go/v18/arrow/flight/gen/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/flightsink/flightsink/flightsink"
	"github.com/flightsink/flightsink/internal/kafkatest"
	"github.com/flightsink/flightsink/kafka"
)

func createTopics(_ *flightsink.Config, k *kafka.Config) { k.CreateTopics = true }

// sqlClient is a Flight SQL client of env.
func sqlClient(t *testing.T, env *testEnv, opts ...grpc.DialOption) *flightsql.Client {
	t.Helper()
	cl, err := flightsql.NewClient(env.addr, nil, nil, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// wantSQLStatus checks an error's code and flightsink-reason trailer.
func wantSQLStatus(t *testing.T, what string, err error, trailer metadata.MD, code codes.Code, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want %v %s", what, code, reason)
	}
	st := status.Convert(err)
	if st.Code() != code || (reason != "" && strings.Join(trailer.Get("flightsink-reason"), "") != reason) {
		t.Fatalf("%s: %v %q (reason %v), want %v %s", what, st.Code(), st.Message(), trailer.Get("flightsink-reason"), code, reason)
	}
	t.Logf("%s: %v %s", what, st.Code(), st.Message())
}

// TestSQLCreateTableAndPreparedInsert is what JDBC tools and Java ADBC do:
// CREATE TABLE in Spark's dialect (declaring the table and creating its
// topic), metadata, a prepared INSERT whose bound batches land as one
// transaction answered with the update count, literal VALUES rows, a
// schema probe, and DROP TABLE refused.
func TestSQLCreateTableAndPreparedInsert(t *testing.T) {
	env := startServer(t, createTopics)
	if !kafkatest.IsReal(env.kind) {
		t.Log("kfake: transactions are emulated")
	}
	cl := sqlClient(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	table := kafkatest.TopicName(t)

	n, err := cl.ExecuteUpdate(ctx, `CREATE TABLE "`+table+`" ("k" TEXT , "id" BIGINT NOT NULL, "b" BYTE , "d" DOUBLE PRECISION , `+
		`"flag" BIT(1) , "dec" DECIMAL(10,2) , "day" DATE , "ts" TIMESTAMP ) WITH (key_field = 'k', partitions = 3)`)
	if err != nil || n != 0 {
		t.Fatalf("CREATE TABLE: %d, %v", n, err)
	}
	var trailer metadata.MD
	_, err = cl.ExecuteUpdate(ctx, `CREATE TABLE "`+table+`" (a INT)`, grpc.Trailer(&trailer))
	wantSQLStatus(t, "CREATE TABLE again", err, trailer, codes.AlreadyExists, "topic_exists")
	if n, err := cl.ExecuteUpdate(ctx, `CREATE TABLE IF NOT EXISTS "`+table+`" (a INT)`); err != nil || n != 0 {
		t.Fatalf("CREATE TABLE IF NOT EXISTS: %d, %v", n, err)
	}

	// Metadata: the table with its columns, the table types.
	info, err := cl.GetTables(ctx, &flightsql.GetTablesOpts{TableNameFilterPattern: &table, IncludeSchema: true})
	if err != nil {
		t.Fatal(err)
	}
	rdr, err := cl.DoGet(ctx, info.Endpoint[0].Ticket)
	if err != nil {
		t.Fatal(err)
	}
	if !rdr.Next() || rdr.RecordBatch().NumRows() != 1 {
		t.Fatalf("GetTables: want one row for %s", table)
	}
	rec := rdr.RecordBatch()
	if typ := rec.Column(3).(*array.String).Value(0); typ != "TABLE" {
		t.Errorf("table type %q, want TABLE", typ)
	}
	schema, err := flight.DeserializeSchema(rec.Column(4).(*array.Binary).Value(0), memory.DefaultAllocator)
	if err != nil || schema.NumFields() != 8 || schema.Field(1).Name != "id" || schema.Field(1).Nullable {
		t.Fatalf("GetTables schema: %v %v", schema, err)
	}
	rdr.Release()
	info, err = cl.GetTableTypes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rdr, err = cl.DoGet(ctx, info.Endpoint[0].Ticket); err != nil || !rdr.Next() {
		t.Fatalf("GetTableTypes: %v", err)
	}
	if got := rdr.RecordBatch().Column(0).String(); got != `["TABLE" "TOPIC"]` {
		t.Errorf("table types %s", got)
	}
	rdr.Release()

	// A prepared INSERT: its parameter schema is the declaration (TIMESTAMP
	// as milliseconds), one execution is one transaction.
	prep, err := cl.Prepare(ctx, `INSERT INTO "`+table+`" VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		t.Fatal(err)
	}
	defer prep.Close(ctx)
	ps := prep.ParameterSchema()
	if ps == nil || ps.NumFields() != 8 || !arrow.TypeEqual(ps.Field(7).Type, &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}) {
		t.Fatalf("parameter schema %v", ps)
	}
	params := paramBatch(t, ps, `[
		{"k":"a","id":1,"b":1,"d":1.5,"flag":true,"dec":"12.34","day":"2026-01-02","ts":"2026-01-02T03:04:05.678Z"},
		{"k":"b","id":2,"b":-2,"d":null,"flag":false,"dec":"-0.01","day":null,"ts":null},
		{"k":"c","id":3,"b":3,"d":3,"flag":null,"dec":null,"day":"1999-12-31","ts":"1970-01-01T00:00:00Z"}]`)
	defer params.Release()
	prep.SetParameters(params)
	if n, err := prep.ExecuteUpdate(ctx); err != nil || n != 3 {
		t.Fatalf("prepared INSERT: %d, %v", n, err)
	}
	recs := kafkatest.ReadCommitted(t, env.brokers, table)
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3", len(recs))
	}
	var first map[string]any
	if err := json.Unmarshal(recs[0].Value, &first); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if string(r.Key) == "a" {
			_ = json.Unmarshal(r.Value, &first)
		}
	}
	if first["id"] != 1.0 || first["dec"] == nil || first["day"] == nil || !strings.HasPrefix(first["ts"].(string), "2026-01-02T03:04:05.678") {
		t.Errorf("row a: %v", first)
	}

	// A bound batch with a null in a NOT NULL column writes nothing.
	bad := paramBatch(t, ps, `[{"k":"x","id":10},{"k":"y","id":null}]`)
	defer bad.Release()
	prep.SetParameters(bad)
	_, err = prep.ExecuteUpdate(ctx, grpc.Trailer(&trailer))
	wantSQLStatus(t, "NULL into NOT NULL", err, trailer, codes.InvalidArgument, "bad_row")

	// Literal rows, prepared and not.
	if n, err := cl.ExecuteUpdate(ctx, `INSERT INTO "`+table+`" ("k", "id", "ts") VALUES ('l1', 11, '2026-03-04 05:06:07'), ('l2', -12, NULL)`); err != nil || n != 2 {
		t.Fatalf("literal INSERT: %d, %v", n, err)
	}
	lit, err := cl.Prepare(ctx, `INSERT INTO "`+table+`" (id) VALUES (13)`)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := lit.ExecuteUpdate(ctx); err != nil || n != 1 {
		t.Fatalf("prepared literal INSERT: %d, %v", n, err)
	}
	lit.Close(ctx)
	if got := kafkatest.CountCommitted(t, env.brokers, table); got != 6 {
		t.Fatalf("%d committed records, want 6", got)
	}

	// Schema probes answer with zero rows; other queries are refused.
	for _, q := range []string{`SELECT * FROM "` + table + `" WHERE 1=0`, `SELECT 1 FROM "` + table + `" LIMIT 0`} {
		info, err := cl.Execute(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		s, err := flight.DeserializeSchema(info.Schema, memory.DefaultAllocator)
		if err != nil || s.NumFields() != 8 || !arrow.TypeEqual(s.Field(7).Type, &arrow.TimestampType{Unit: arrow.Microsecond}) {
			t.Fatalf("%s: schema %v %v", q, s, err)
		}
		rdr, err := cl.DoGet(ctx, info.Endpoint[0].Ticket)
		if err != nil {
			t.Fatal(err)
		}
		for rdr.Next() {
			if rdr.RecordBatch().NumRows() != 0 {
				t.Fatalf("%s returned rows", q)
			}
		}
		rdr.Release()
	}
	_, err = cl.Execute(ctx, `SELECT 1`, grpc.Trailer(&trailer))
	wantSQLStatus(t, "SELECT 1", err, trailer, codes.Unimplemented, "unimplemented")
	_, err = cl.Execute(ctx, `SELECT * FROM nosuchtable WHERE 1=0`, grpc.Trailer(&trailer))
	wantSQLStatus(t, "probe of an undeclared table", err, trailer, codes.NotFound, "topic_missing")

	// DROP TABLE and TRUNCATE are refused, and change nothing.
	_, err = cl.ExecuteUpdate(ctx, `DROP TABLE "`+table+`"`, grpc.Trailer(&trailer))
	wantSQLStatus(t, "DROP TABLE", err, trailer, codes.FailedPrecondition, "append_only")
	_, err = cl.Prepare(ctx, `TRUNCATE TABLE "`+table+`"`, grpc.Trailer(&trailer))
	wantSQLStatus(t, "TRUNCATE", err, trailer, codes.FailedPrecondition, "append_only")
	if got := kafkatest.CountCommitted(t, env.brokers, table); got != 6 {
		t.Fatalf("%d committed records after the refusals, want 6", got)
	}
}

// paramBatch builds a batch of schema from JSON rows.
func paramBatch(t *testing.T, schema *arrow.Schema, rows string) arrow.RecordBatch {
	t.Helper()
	rec, _, err := array.RecordFromJSON(memory.DefaultAllocator, schema, strings.NewReader(rows))
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// TestSQLPermissions: only a principal with declare_tables declares
// tables; a prepared statement runs only for the principal that prepared
// it (its handle, replayed by another, is refused and writes nothing).
func TestSQLPermissions(t *testing.T) {
	const aliceToken, bobToken = "alice-token-0123456789abcdef", "bob-token-0123456789abcdef"
	var cfg flightsink.AuthConfig
	cfg.Tokens = []flightsink.TokenConfig{{Principal: "alice"}, {Principal: "bob"}}
	cfg.Tokens[0].Token.Value, cfg.Tokens[1].Token.Value = aliceToken, bobToken
	cfg.Principals = []flightsink.PrincipalConfig{{Name: "alice", Topics: []string{"*"}, DeclareTables: true}, {Name: "bob", Topics: []string{"*"}}}
	env := startServerWith(t, []flightsink.Option{flightsink.WithAuth(cfg)}, nil, createTopics)
	alice := sqlClient(t, env, grpc.WithPerRPCCredentials(bearer(aliceToken)))
	bob := sqlClient(t, env, grpc.WithPerRPCCredentials(bearer(bobToken)))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	table := kafkatest.TopicName(t)

	var trailer metadata.MD
	_, err := bob.ExecuteUpdate(ctx, `CREATE TABLE "`+table+`" (id INT)`, grpc.Trailer(&trailer))
	wantSQLStatus(t, "bob declares", err, trailer, codes.PermissionDenied, "forbidden")
	if _, err := alice.ExecuteUpdate(ctx, `CREATE TABLE "`+table+`" (id INT)`); err != nil {
		t.Fatalf("alice declares: %v", err)
	}

	prep, err := alice.Prepare(ctx, `INSERT INTO "`+table+`" VALUES (?)`)
	if err != nil {
		t.Fatal(err)
	}
	defer prep.Close(ctx)
	params := paramBatch(t, prep.ParameterSchema(), `[{"id": 1}]`)
	defer params.Release()
	// Bob replays alice's handle on a DoPut of his own.
	cmd, err := anypb.New(&pb.CommandPreparedStatementUpdate{PreparedStatementHandle: prep.Handle()})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := proto.Marshal(cmd)
	res := env.as(t, bobToken, nil).put(t, &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: b}, params.Schema(), batch(params))
	if res.code != codes.PermissionDenied || res.reason != "forbidden" {
		t.Fatalf("bob runs alice's statement: %v %s %q", res.code, res.reason, res.message)
	}
	prep.SetParameters(params)
	if n, err := prep.ExecuteUpdate(ctx); err != nil || n != 1 {
		t.Fatalf("alice runs her statement: %d %v", n, err)
	}
	if got := kafkatest.CountCommitted(t, env.brokers, table); got != 1 {
		t.Fatalf("%d committed records, want alice's 1", got)
	}
}

// TestSQLBoundTypes: bound parameters of other types than the statement's
// (Java ADBC binds its own) are cast safely to the declared ones, or the
// execution is refused naming the column and writes nothing.
func TestSQLBoundTypes(t *testing.T) {
	env := startServer(t, createTopics)
	cl := sqlClient(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	table := kafkatest.TopicName(t)
	if _, err := cl.ExecuteUpdate(ctx, `CREATE TABLE "`+table+`" (n INT, s VARCHAR)`); err != nil {
		t.Fatal(err)
	}
	prep, err := cl.Prepare(ctx, `INSERT INTO "`+table+`" (n, s) VALUES (?, ?)`)
	if err != nil {
		t.Fatal(err)
	}
	defer prep.Close(ctx)
	own := arrow.NewSchema([]arrow.Field{{Name: "a", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "b", Type: arrow.BinaryTypes.LargeString, Nullable: true}}, nil)
	ok := paramBatch(t, own, `[{"a": 1, "b": "x"}, {"a": -2147483648, "b": null}]`)
	defer ok.Release()
	prep.SetParameters(ok)
	if n, err := prep.ExecuteUpdate(ctx); err != nil || n != 2 {
		t.Fatalf("int64 and large_string parameters: %d %v", n, err)
	}
	tooBig := paramBatch(t, own, `[{"a": 1, "b": "y"}, {"a": 4294967296, "b": "z"}]`)
	defer tooBig.Release()
	prep.SetParameters(tooBig)
	var trailer metadata.MD
	_, err = prep.ExecuteUpdate(ctx, grpc.Trailer(&trailer))
	wantSQLStatus(t, "an int64 over INT's range", err, trailer, codes.InvalidArgument, "bad_schema")
	if !strings.Contains(status.Convert(err).Message(), `column "n"`) {
		t.Fatalf("the message should name the column: %v", err)
	}
	var values []string
	for _, r := range kafkatest.ReadCommitted(t, env.brokers, table) {
		values = append(values, string(r.Value))
	}
	slices.Sort(values)
	if strings.Join(values, " ") != `{"n":-2147483648,"s":null} {"n":1,"s":"x"}` {
		t.Fatalf("records %q, want the first execution's 2", values)
	}
}
