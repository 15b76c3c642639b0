package flightsink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/flightsink/flightsink/kafka/sinkapi"
)

// A table is a topic with a declared Arrow schema and record options
// (CREATE TABLE through Flight SQL), kept by the Kafka side in the
// compacted tables topic so every replica sees it.

// tableDecl is a declared table, decoded.
type tableDecl struct {
	topic   string
	schema  *arrow.Schema // NOT NULL columns are not nullable
	options map[string]string
	subject string // the Avro subject declaring it, "" for CREATE TABLE (sinkapi.Table.Subject)
}

// tableOptions are the WITH (...) options of CREATE TABLE that become the
// table's record options; partitions only sizes a topic it creates.
var tableOptions = []string{"key_field", "timestamp_field", "format", "partitions"}

// lookupTable returns the declaration of table: its CREATE TABLE, else
// its Avro value subject in the schema registry; NotFound (topic_missing)
// when it has neither: a table that is not declared is missing, whether or
// not a topic of that name exists.
func lookupTable(ctx context.Context, sink Kafka, mem memory.Allocator, table string) (*tableDecl, error) {
	tables, err := sink.Tables(ctx)
	if err != nil {
		return nil, err
	}
	t, ok := tables[table]
	if !ok {
		if t, ok, err = sink.SubjectTable(ctx, table); err != nil {
			if errors.Is(err, sinkapi.ErrSchemaRejected) {
				return nil, newError(codes.FailedPrecondition, ReasonSchemaRejected, "table %q: %v; declare it with CREATE TABLE", clip(table), err)
			}
			return nil, err
		}
	}
	if !ok {
		return nil, newError(codes.NotFound, ReasonTopicMissing,
			"table %q is not declared: declare it with CREATE TABLE, or register its Avro value schema as subject %q "+
				"(a topic is a table once its schema is declared)", clip(table), clip(table)+"-value")
	}
	return decodeTable(t, mem)
}

func decodeTable(t sinkapi.Table, mem memory.Allocator) (*tableDecl, error) {
	schema, err := flight.DeserializeSchema(t.Schema, mem)
	if err != nil {
		return nil, fmt.Errorf("the declaration of table %q in kafka.tables_topic is unreadable: %w", t.Topic, err)
	}
	return &tableDecl{topic: t.Topic, schema: schema, options: t.Options, subject: t.Subject}, nil
}

// declareTable runs CREATE TABLE for principal p: the principal may
// declare tables and write the topic; the options name declared columns;
// the topic is created when missing (and kafka.create_topics allows), then
// the declaration is stored. A declared table is AlreadyExists, or nothing
// to do with IF NOT EXISTS.
func declareTable(ctx context.Context, sink Kafka, p *Principal, st *sqlStatement, sql string, mem memory.Allocator) error {
	if !p.anonymous && !p.declareTables {
		return newError(codes.PermissionDenied, ReasonForbidden,
			"principal %q may not declare tables (auth.principals[].declare_tables)", p.Name)
	}
	if err := ValidateTopicName(st.table); err != nil {
		return newError(codes.InvalidArgument, ReasonBadRequest, "CREATE TABLE: table: %v", err)
	}
	if why := reservedTopic(sink, st.table); why != "" {
		return newError(codes.PermissionDenied, ReasonReservedTopic, "topic %q is reserved: %s; no principal may write to it", st.table, why)
	}
	if !p.allowTopic(st.table) {
		return newError(codes.PermissionDenied, ReasonForbidden, "principal %q may not write to topic %q", p.Name, st.table)
	}
	fields := make([]arrow.Field, len(st.columns))
	for i, c := range st.columns {
		fields[i] = arrow.Field{Name: c.name, Type: c.typ, Nullable: !c.notNull,
			Metadata: arrow.NewMetadata([]string{"sql_type"}, []string{c.sqlType})}
	}
	opts := map[string]string{}
	var partitions int32
	for _, kv := range st.with {
		name, v := kv[0], kv[1]
		switch name {
		case "key_field", "timestamp_field":
			if !slices.ContainsFunc(st.columns, func(c sqlColumn) bool { return c.name == v }) {
				return newError(codes.InvalidArgument, ReasonBadRequest, "CREATE TABLE option %s: %q is not a column of the table", name, clip(v))
			}
		case "format":
			if v != string(FormatJSON) {
				return newError(codes.InvalidArgument, ReasonBadRequest, `CREATE TABLE option format: %q is not supported (supported: "json")`, clip(v))
			}
		case "partitions":
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil || n < 1 {
				return newError(codes.InvalidArgument, ReasonBadRequest, "CREATE TABLE option partitions: %q must be an integer >= 1", clip(v))
			}
			partitions = int32(n)
			continue
		default:
			return newError(codes.InvalidArgument, ReasonBadRequest, "CREATE TABLE option %q is unknown (known: %s)", clip(name), strings.Join(tableOptions, ", "))
		}
		opts[name] = v
	}
	tables, err := sink.Tables(ctx)
	if err != nil {
		return err
	}
	if _, ok := tables[st.table]; ok {
		if st.ifNotExists {
			return nil
		}
		return newError(codes.AlreadyExists, ReasonTopicExists, "table %q is already declared; use CREATE TABLE IF NOT EXISTS, or write to it", st.table)
	}
	if _, err := sink.Lookup(ctx, st.table); errors.Is(err, sinkapi.ErrTopicMissing) {
		if !sink.CreateTopicsAllowed() {
			return newError(codes.FailedPrecondition, ReasonTopicMissing,
				"CREATE TABLE %q: the topic does not exist and kafka.create_topics is off; create the topic first or turn the setting on", st.table)
		}
		if err := sink.CreateTopicWith(ctx, st.table, partitions); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	return sink.DeclareTable(ctx, sinkapi.Table{Topic: st.table, Schema: flight.SerializeSchema(arrow.NewSchema(fields, nil), mem),
		Options: opts, SQL: sql, DeclaredBy: p.Name, DeclaredAt: time.Now().UTC()})
}

// parameterSchema is what an INSERT's parameters bind: the named columns
// (all, without a column list) in order, as their declared types except
// TIMESTAMP, which is timestamp[ms, UTC]: arrow-java's JDBC driver writes
// setTimestamp values as epoch milliseconds into whatever unit the
// parameter declares. The server converts them (bind). cols are the
// table's column indexes of the parameters.
func parameterSchema(t *tableDecl, st *sqlStatement) (*arrow.Schema, []int, error) {
	var cols []int
	if st.insertCols == nil {
		if n := len(st.rows[0]); n != t.schema.NumFields() {
			return nil, nil, newError(codes.InvalidArgument, ReasonBadRequest,
				"INSERT INTO %q gives %d values, the table has %d columns; name the columns: INSERT INTO t (a, b) VALUES ...", t.topic, n, t.schema.NumFields())
		}
		for i := range t.schema.NumFields() {
			cols = append(cols, i)
		}
	} else {
		for _, name := range st.insertCols {
			idx := t.schema.FieldIndices(name)
			if len(idx) == 0 {
				return nil, nil, newError(codes.InvalidArgument, ReasonBadRequest, "INSERT INTO %q: %q is not a column of the table (columns: %s)",
					t.topic, clip(name), strings.Join(fieldNames(t.schema), ", "))
			}
			if slices.Contains(cols, idx[0]) {
				return nil, nil, newError(codes.InvalidArgument, ReasonBadRequest, "INSERT INTO %q names column %q twice", t.topic, clip(name))
			}
			cols = append(cols, idx[0])
		}
		for i, f := range t.schema.Fields() {
			if !f.Nullable && !slices.Contains(cols, i) {
				return nil, nil, newError(codes.InvalidArgument, ReasonBadRequest, "INSERT INTO %q leaves out column %q, which is NOT NULL", t.topic, f.Name)
			}
		}
	}
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		f := t.schema.Field(c)
		if ts, ok := f.Type.(*arrow.TimestampType); ok {
			f.Type = &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: ts.TimeZone}
		}
		fields[i] = arrow.Field{Name: f.Name, Type: f.Type, Nullable: true}
	}
	return arrow.NewSchema(fields, nil), cols, nil
}

// probeSchema is the schema a probe (SELECT * FROM t WHERE 1=0) answers
// with: the declared one, timestamps without a zone: arrow-java's JDBC
// driver reports a zoned one as TIMESTAMP_WITH_TIMEZONE, which Spark's
// default dialect cannot map (it then fails after writing every row).
func probeSchema(s *arrow.Schema) *arrow.Schema {
	fields := slices.Clone(s.Fields())
	for i, f := range fields {
		if ts, ok := f.Type.(*arrow.TimestampType); ok {
			fields[i].Type = &arrow.TimestampType{Unit: ts.Unit}
		}
	}
	return arrow.NewSchema(fields, nil)
}

func fieldNames(s *arrow.Schema) []string {
	out := make([]string, s.NumFields())
	for i, f := range s.Fields() {
		out[i] = f.Name
	}
	return out
}

// sqlHeaderOptions are the record options a SQL statement may take from
// call headers flightsink-<name> (the JDBC driver sends unknown connection
// properties as headers; ADBC sends adbc.flight.sql.rpc.call_header.<name>).
var sqlHeaderOptions = []string{"key_field", "timestamp_field", "format", "delivery"}

// headerOptions reads sqlHeaderOptions from the call's headers.
func headerOptions(ctx context.Context) map[string]string {
	md, _ := metadata.FromIncomingContext(ctx)
	out := map[string]string{}
	for _, key := range sqlHeaderOptions {
		if v := md.Get("flightsink-" + strings.ReplaceAll(key, "_", "-")); len(v) > 0 {
			out[key] = v[0]
		}
	}
	return out
}

// sqlStatus maps a parser error to a status: an unsupported statement is
// Unimplemented, saying what this server does; a malformed one bad_request.
func sqlStatus(err error) error {
	var se *sqlError
	if !errors.As(err, &se) {
		return err
	}
	if strings.HasPrefix(se.msg, "unsupported") {
		return newError(codes.Unimplemented, ReasonUnimplemented,
			"SQL: %s; flightsink writes to topics: it runs CREATE TABLE, INSERT INTO t [(cols)] VALUES (...), and schema probes "+
				"(SELECT * FROM t WHERE 1=0); it runs no other queries", se.msg)
	}
	return newError(codes.InvalidArgument, ReasonBadRequest, "SQL: %s", se.msg)
}

// refuseDestructive answers DROP TABLE and TRUNCATE.
func refuseDestructive(st *sqlStatement) error {
	what := "DROP TABLE"
	if st.kind == stmtTruncate {
		what = "TRUNCATE"
	}
	return newError(codes.FailedPrecondition, ReasonAppendOnly,
		"%s %q: topics are append-only; flightsink neither drops nor truncates them (forgetting a table's declaration is an admin action)",
		what, clip(st.table))
}
