package flightsink

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql/schema_ref"
	pb "github.com/apache/arrow-go/v18/arrow/flight/gen/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/flightsink/flightsink/kafka/sinkapi"
)

// errOnlyIngests answers every Flight SQL call flightsink does not serve.
var errOnlyIngests = status.Error(codes.Unimplemented,
	"flightsink only writes: it serves Flight SQL bulk ingest (CommandStatementIngest, e.g. ADBC adbc_ingest), "+
		"CREATE TABLE and INSERT statements, schema probes (SELECT * FROM t WHERE 1=0) and metadata; it runs no other queries")

// sqlService answers the Flight SQL metadata calls ADBC drivers and engines
// make around an ingest: GetSqlInfo (what the server supports) and
// GetTables (the topics). Ingest itself runs on the DoPut stream loop.
type sqlService struct {
	flightsql.BaseServer
	sink    Kafka
	handles *handleSigner // signs prepared statement handles (sqlstatements.go)
}

func newSQLService(sink Kafka, mem memory.Allocator, handles *handleSigner) *sqlService {
	s := &sqlService{sink: sink, handles: handles}
	s.Alloc = mem
	for id, v := range map[flightsql.SqlInfo]any{
		flightsql.SqlInfoFlightSqlServerName:                        "flightsink",
		flightsql.SqlInfoFlightSqlServerVersion:                     "1",
		flightsql.SqlInfoFlightSqlServerArrowVersion:                "18",
		flightsql.SqlInfoFlightSqlServerReadOnly:                    false,
		flightsql.SqlInfoFlightSqlServerSql:                         true, // CREATE TABLE, INSERT, schema probes
		flightsql.SqlInfoFlightSqlServerSubstrait:                   false,
		flightsql.SqlInfoFlightSqlServerTransaction:                 int32(flightsql.SqlTransactionNone),
		flightsql.SqlInfoFlightSqlServerCancel:                      false,
		flightsql.SqlInfoFlightSqlServerBulkIngestion:               true,
		flightsql.SqlInfoFlightSqlServerIngestTransactionsSupported: false,
	} {
		_ = s.RegisterSqlInfo(id, v)
	}
	return s
}

// GetFlightInfoSubstraitPlan refuses queries.
func (s *sqlService) GetFlightInfoSubstraitPlan(context.Context, flightsql.StatementSubstraitPlan, *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	return nil, errOnlyIngests
}

// GetFlightInfoTables points the client at DoGetTables.
func (s *sqlService) GetFlightInfoTables(_ context.Context, cmd flightsql.GetTables, desc *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	schema := schema_ref.Tables
	if cmd.GetIncludeSchema() {
		schema = schema_ref.TablesWithIncludedSchema
	}
	return s.info(desc, schema), nil
}

// DoGetTables lists the topics the caller may write that match the
// filters, in no catalog or schema: declared tables (type TABLE, with
// their schema: the columns JDBC's getColumns lists) and the other topics
// (type TOPIC, with an empty schema: their rows have none fixed).
func (s *sqlService) DoGetTables(ctx context.Context, cmd flightsql.GetTables) (*arrow.Schema, <-chan flight.StreamChunk, error) {
	if c := cmd.GetCatalog(); c != nil && *c != "" {
		return s.tables(cmd, nil, nil)
	}
	wantTable, wantTopic := true, true
	if types := cmd.GetTableTypes(); len(types) > 0 {
		wantTable, wantTopic = false, false
		for _, t := range types {
			wantTable = wantTable || strings.EqualFold(t, "TABLE")
			wantTopic = wantTopic || strings.EqualFold(t, "TOPIC")
		}
	}
	topics, err := s.sink.ListTopics(ctx)
	if err != nil {
		return nil, nil, classify(err)
	}
	declared, err := s.sink.Tables(ctx)
	if err != nil {
		return nil, nil, classify(err)
	}
	// Only what the caller may write: a principal learns no other topic's
	// name, and nobody sees a reserved topic.
	principal := PrincipalFromContext(ctx)
	var writable, undeclared []string
	for _, t := range topics {
		if reservedTopic(s.sink, t) != "" || !principal.allowTopic(t) {
			continue
		}
		if p := cmd.GetTableNameFilterPattern(); p != nil && !likeMatch(*p, t) {
			continue
		}
		writable = append(writable, t)
		if _, ok := declared[t]; !ok {
			undeclared = append(undeclared, t)
		}
	}
	// Topics whose Avro subject declares them are tables too.
	bySubject, err := s.sink.SubjectTables(ctx, undeclared)
	if err != nil {
		return nil, nil, classify(err)
	}
	for t, decl := range bySubject {
		declared[t] = decl
	}
	var match []string
	for _, t := range writable {
		if _, ok := declared[t]; ok && !wantTable || !ok && !wantTopic {
			continue
		}
		match = append(match, t)
	}
	return s.tables(cmd, match, declared)
}

func (s *sqlService) tables(cmd flightsql.GetTables, topics []string, declared map[string]sinkapi.Table) (*arrow.Schema, <-chan flight.StreamChunk, error) {
	schema := schema_ref.Tables
	if cmd.GetIncludeSchema() {
		schema = schema_ref.TablesWithIncludedSchema
	}
	b := array.NewRecordBuilder(s.Alloc, schema)
	defer b.Release()
	empty := flight.SerializeSchema(arrow.NewSchema(nil, nil), s.Alloc)
	for _, t := range topics {
		b.Field(0).AppendNull()
		b.Field(1).AppendNull()
		b.Field(2).(*array.StringBuilder).Append(t)
		decl, ok := declared[t]
		if ok {
			b.Field(3).(*array.StringBuilder).Append("TABLE")
		} else {
			b.Field(3).(*array.StringBuilder).Append("TOPIC")
		}
		if cmd.GetIncludeSchema() {
			ser := empty
			if ok {
				if d, err := decodeTable(decl, s.Alloc); err == nil {
					ser = flight.SerializeSchema(probeSchema(d.schema), s.Alloc)
				}
			}
			b.Field(4).(*array.BinaryBuilder).Append(ser)
		}
	}
	ch := make(chan flight.StreamChunk, 1)
	ch <- flight.StreamChunk{Data: b.NewRecordBatch()}
	close(ch)
	return schema, ch, nil
}

// GetFlightInfoTableTypes points the client at DoGetTableTypes.
func (s *sqlService) GetFlightInfoTableTypes(_ context.Context, desc *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	return s.info(desc, schema_ref.TableTypes), nil
}

// DoGetTableTypes lists the two kinds of table: TABLE (a declared one) and
// TOPIC (any other topic).
func (s *sqlService) DoGetTableTypes(context.Context) (*arrow.Schema, <-chan flight.StreamChunk, error) {
	b := array.NewRecordBuilder(s.Alloc, schema_ref.TableTypes)
	defer b.Release()
	b.Field(0).(*array.StringBuilder).AppendValues([]string{"TABLE", "TOPIC"}, nil)
	ch := make(chan flight.StreamChunk, 1)
	ch <- flight.StreamChunk{Data: b.NewRecordBatch()}
	close(ch)
	return schema_ref.TableTypes, ch, nil
}

// likeMatch applies a SQL LIKE pattern (% and _, backslash escapes).
func likeMatch(pattern, s string) bool {
	var re strings.Builder
	re.WriteString("^")
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; c {
		case '%':
			re.WriteString(".*")
		case '_':
			re.WriteString(".")
		case '\\':
			if i+1 < len(pattern) {
				i++
				re.WriteString(regexp.QuoteMeta(string(pattern[i])))
			}
		default:
			re.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	re.WriteString("$")
	ok, _ := regexp.MatchString(re.String(), s)
	return ok
}

// ingestCommand returns the CommandStatementIngest a DoPut descriptor
// carries, or nil when it is not one (then it is flightsink's own protocol).
func ingestCommand(fd *flight.FlightDescriptor) (*pb.CommandStatementIngest, error) {
	if fd == nil || fd.Type != flight.DescriptorCMD || len(fd.Cmd) == 0 || fd.Cmd[0] == '{' {
		return nil, nil
	}
	var any anypb.Any
	if err := proto.Unmarshal(fd.Cmd, &any); err != nil || any.TypeUrl == "" {
		return nil, nil //nolint:nilerr // not protobuf: our JSON protocol reports it
	}
	var cmd pb.CommandStatementIngest
	if !any.MessageIs(&cmd) {
		if isSQLUpdate(&any) {
			return nil, nil // sqlUpdateCommand's
		}
		return nil, errOnlyIngests
	}
	if err := any.UnmarshalTo(&cmd); err != nil {
		return nil, badDescriptor(fmt.Sprintf("CommandStatementIngest: %v", err))
	}
	return &cmd, nil
}

// GetFlightInfoCatalogs points the client at DoGetCatalogs.
func (s *sqlService) GetFlightInfoCatalogs(_ context.Context, desc *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	return s.info(desc, schema_ref.Catalogs), nil
}

// DoGetCatalogs lists no catalogs: topics live in none.
func (s *sqlService) DoGetCatalogs(context.Context) (*arrow.Schema, <-chan flight.StreamChunk, error) {
	return s.empty(schema_ref.Catalogs)
}

// GetFlightInfoSchemas points the client at DoGetDBSchemas.
func (s *sqlService) GetFlightInfoSchemas(_ context.Context, _ flightsql.GetDBSchemas, desc *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	return s.info(desc, schema_ref.DBSchemas), nil
}

// DoGetDBSchemas lists one unnamed schema in no catalog: where the topics
// are, for clients that walk catalogs, schemas, then tables (ADBC GetObjects).
func (s *sqlService) DoGetDBSchemas(context.Context, flightsql.GetDBSchemas) (*arrow.Schema, <-chan flight.StreamChunk, error) {
	b := array.NewRecordBuilder(s.Alloc, schema_ref.DBSchemas)
	defer b.Release()
	b.Field(0).AppendNull()
	b.Field(1).(*array.StringBuilder).Append("")
	ch := make(chan flight.StreamChunk, 1)
	ch <- flight.StreamChunk{Data: b.NewRecordBatch()}
	close(ch)
	return schema_ref.DBSchemas, ch, nil
}

func (s *sqlService) info(desc *flight.FlightDescriptor, schema *arrow.Schema) *flight.FlightInfo {
	return &flight.FlightInfo{
		Endpoint:         []*flight.FlightEndpoint{{Ticket: &flight.Ticket{Ticket: desc.Cmd}}},
		FlightDescriptor: desc,
		Schema:           flight.SerializeSchema(schema, s.Alloc),
		TotalRecords:     -1,
		TotalBytes:       -1,
	}
}

func (s *sqlService) empty(schema *arrow.Schema) (*arrow.Schema, <-chan flight.StreamChunk, error) {
	b := array.NewRecordBuilder(s.Alloc, schema)
	defer b.Release()
	ch := make(chan flight.StreamChunk, 1)
	ch <- flight.StreamChunk{Data: b.NewRecordBatch()}
	close(ch)
	return schema, ch, nil
}
