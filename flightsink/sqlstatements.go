package flightsink

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	pb "github.com/apache/arrow-go/v18/arrow/flight/gen/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// SQL statements through Flight SQL. JDBC tools send every statement as a
// prepared statement (CreatePreparedStatement, then a DoPut of
// CommandPreparedStatementUpdate or a GetFlightInfo of the query); Java
// ADBC sends CREATE TABLE as a CommandStatementUpdate. Writes run on the
// DoPut stream as an ingest does: one exactly-once transaction per DoPut,
// committed when it completes and answered with the update count.

// visibleTable is the declaration of a table the principal may write; a
// table it may not write is missing to it, as in GetTables.
func visibleTable(ctx context.Context, sink Kafka, mem memory.Allocator, p *Principal, table string) (*tableDecl, error) {
	if reservedTopic(sink, table) != "" || !p.allowTopic(table) {
		return nil, newError(codes.NotFound, ReasonTopicMissing,
			"table %q is not declared: declare it with CREATE TABLE (a topic is a table once its schema is declared)", clip(table))
	}
	return lookupTable(ctx, sink, mem, table)
}

// CreatePreparedStatement parses the statement and answers with a signed,
// self-contained handle: an INSERT with its parameter schema, a schema
// probe with its result schema, CREATE TABLE with neither. DROP TABLE and
// TRUNCATE are refused here; other statements are Unimplemented.
func (s *sqlService) CreatePreparedStatement(ctx context.Context, req flightsql.ActionCreatePreparedStatementRequest) (flightsql.ActionCreatePreparedStatementResult, error) {
	var res flightsql.ActionCreatePreparedStatementResult
	if req.GetTransactionId() != nil {
		return res, newError(codes.Unimplemented, ReasonUnimplemented, "Flight SQL transactions are not supported; each execution is its own Kafka transaction")
	}
	st, err := parseSQL(req.GetQuery())
	if err != nil {
		return res, sqlStatus(err)
	}
	p := PrincipalFromContext(ctx)
	update := true
	switch st.kind {
	case stmtDrop, stmtTruncate:
		return res, refuseDestructive(st)
	case stmtInsert:
		t, err := visibleTable(ctx, s.sink, s.Alloc, p, st.table)
		if err != nil {
			return res, classify(err)
		}
		if st.params > 0 {
			if res.ParameterSchema, _, err = parameterSchema(t, st); err != nil {
				return res, err
			}
		} else {
			rec, err := literalRows(t, st, s.Alloc) // refused now rather than when executed
			if err != nil {
				return res, err
			}
			rec.Release()
		}
	case stmtProbe:
		t, err := visibleTable(ctx, s.sink, s.Alloc, p, st.table)
		if err != nil {
			return res, classify(err)
		}
		res.DatasetSchema, update = probeSchema(t.schema), false
	}
	res.IsUpdate = &update
	res.Handle = s.handles.sign(stmtClaims{Principal: p.Name, SQL: req.GetQuery(), Options: headerOptions(ctx)})
	return res, nil
}

// ClosePreparedStatement ends the handle on this replica (handles are
// self-contained: other replicas let it expire).
func (s *sqlService) ClosePreparedStatement(_ context.Context, req flightsql.ActionClosePreparedStatementRequest) error {
	s.handles.close(req.GetPreparedStatementHandle())
	return nil
}

// probe parses a query and answers its result schema: a schema probe of
// a table the caller may write and that is declared; other statements
// are refused.
func (s *sqlService) probe(ctx context.Context, sql string) (*arrow.Schema, error) {
	st, err := parseSQL(sql)
	if err != nil {
		return nil, sqlStatus(err)
	}
	switch st.kind {
	case stmtProbe:
	case stmtDrop, stmtTruncate:
		return nil, refuseDestructive(st)
	default:
		return nil, newError(codes.InvalidArgument, ReasonBadRequest, "SQL: this statement is an update, not a query; execute it as an update (JDBC executeUpdate)")
	}
	t, err := visibleTable(ctx, s.sink, s.Alloc, PrincipalFromContext(ctx), st.table)
	if err != nil {
		return nil, classify(err)
	}
	return probeSchema(t.schema), nil
}

// GetFlightInfoStatement answers a schema probe (SELECT * FROM t WHERE
// 1=0): its schema, and a ticket for its zero rows.
func (s *sqlService) GetFlightInfoStatement(ctx context.Context, cmd flightsql.StatementQuery, desc *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	schema, err := s.probe(ctx, cmd.GetQuery())
	if err != nil {
		return nil, err
	}
	ticket, err := flightsql.CreateStatementQueryTicket([]byte(cmd.GetQuery()))
	if err != nil {
		return nil, err
	}
	info := s.info(desc, schema)
	info.Endpoint[0].Ticket.Ticket = ticket
	return info, nil
}

// DoGetStatement streams a probe's zero rows.
func (s *sqlService) DoGetStatement(ctx context.Context, t flightsql.StatementQueryTicket) (*arrow.Schema, <-chan flight.StreamChunk, error) {
	schema, err := s.probe(ctx, string(t.GetStatementHandle()))
	if err != nil {
		return nil, nil, err
	}
	return s.noRows(schema)
}

// noRows is a stream of schema without batches: a probe's answer. (A
// zero-row batch makes arrow-java's JDBC driver list every column twice.)
func (s *sqlService) noRows(schema *arrow.Schema) (*arrow.Schema, <-chan flight.StreamChunk, error) {
	ch := make(chan flight.StreamChunk)
	close(ch)
	return schema, ch, nil
}

// GetFlightInfoPreparedStatement answers a prepared probe.
func (s *sqlService) GetFlightInfoPreparedStatement(ctx context.Context, cmd flightsql.PreparedStatementQuery, desc *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	c, err := s.handles.open(cmd.GetPreparedStatementHandle(), PrincipalFromContext(ctx))
	if err != nil {
		return nil, err
	}
	schema, err := s.probe(ctx, c.SQL)
	if err != nil {
		return nil, err
	}
	return s.info(desc, schema), nil
}

// DoGetPreparedStatement streams a prepared probe's zero rows.
func (s *sqlService) DoGetPreparedStatement(ctx context.Context, cmd flightsql.PreparedStatementQuery) (*arrow.Schema, <-chan flight.StreamChunk, error) {
	c, err := s.handles.open(cmd.GetPreparedStatementHandle(), PrincipalFromContext(ctx))
	if err != nil {
		return nil, nil, err
	}
	schema, err := s.probe(ctx, c.SQL)
	if err != nil {
		return nil, nil, err
	}
	return s.noRows(schema)
}

// SetSessionOptions accepts the options the JDBC driver sends for its
// catalog and schema connection properties: tables live in no catalog, so
// they change nothing; other options are reported invalid.
func (s *sqlService) SetSessionOptions(_ context.Context, req *flight.SetSessionOptionsRequest) (*flight.SetSessionOptionsResult, error) {
	res := &flight.SetSessionOptionsResult{Errors: map[string]*flight.SetSessionOptionsResultError{}}
	for name := range req.GetSessionOptions() {
		if name != "catalog" && name != "schema" {
			res.Errors[name] = &flight.SetSessionOptionsResultError{Value: flight.SetSessionOptionsResultErrorInvalidName}
		}
	}
	return res, nil
}

// GetSessionOptions reports no session options.
func (s *sqlService) GetSessionOptions(context.Context, *flight.GetSessionOptionsRequest) (*flight.GetSessionOptionsResult, error) {
	return &flight.GetSessionOptionsResult{}, nil
}

// CloseSession has nothing to close.
func (s *sqlService) CloseSession(context.Context, *flight.CloseSessionRequest) (*flight.CloseSessionResult, error) {
	return &flight.CloseSessionResult{Status: flight.CloseSessionResultClosed}, nil
}

// isSQLUpdate reports whether a DoPut command is a Flight SQL update.
func isSQLUpdate(a *anypb.Any) bool {
	return a.MessageIs(&pb.CommandStatementUpdate{}) || a.MessageIs(&pb.CommandPreparedStatementUpdate{})
}

// sqlBind is a prepared INSERT's binding: the parameters of each batch
// become the table's columns (cast safely to the declared types; columns
// not named are null).
type sqlBind struct {
	table  *tableDecl
	params *arrow.Schema
	cols   []int // the table column of each parameter
	mem    memory.Allocator
}

// sqlUpdate runs a Flight SQL update DoPut (CommandStatementUpdate or
// CommandPreparedStatementUpdate). done means the stream is answered:
// CREATE TABLE, literal VALUES rows, or a refusal. Otherwise (a prepared
// INSERT with parameters, or not an update at all) the stream goes on: for
// the INSERT, st.desc and st.bind are set and the loop writes the bound
// batches in one transaction.
func (st *stream) sqlUpdate(first *flight.FlightData, recv *receiver) (done bool, err error) {
	fd := first.FlightDescriptor
	if fd == nil || fd.Type != flight.DescriptorCMD || len(fd.Cmd) == 0 || fd.Cmd[0] == '{' {
		return false, nil
	}
	var a anypb.Any
	if proto.Unmarshal(fd.Cmd, &a) != nil || !isSQLUpdate(&a) {
		return false, nil
	}
	st.ingest = &ingestState{} // one DoPutUpdateResult, one transaction
	sql, opts, prepared := "", map[string]string{}, false
	var upd pb.CommandStatementUpdate
	var prep pb.CommandPreparedStatementUpdate
	switch {
	case a.UnmarshalTo(&upd) == nil:
		if upd.TransactionId != nil {
			return true, newError(codes.Unimplemented, ReasonUnimplemented, "Flight SQL transactions are not supported; each statement is its own Kafka transaction")
		}
		sql = upd.GetQuery()
	case a.UnmarshalTo(&prep) == nil:
		c, err := st.srv.handles.open(prep.GetPreparedStatementHandle(), st.principal)
		if err != nil {
			return true, err
		}
		sql, prepared = c.SQL, true
		for k, v := range c.Options {
			opts[k] = v
		}
	default:
		return true, newError(codes.InvalidArgument, ReasonBadRequest, "the Flight SQL update command cannot be read")
	}
	for k, v := range headerOptions(st.ctx) { // the execution's headers win
		opts[k] = v
	}
	stmt, err := parseSQL(sql)
	if err != nil {
		return true, sqlStatus(err)
	}
	sink, mem := st.srv.sink, st.srv.mem
	switch stmt.kind {
	case stmtDrop, stmtTruncate:
		return true, refuseDestructive(stmt)
	case stmtProbe:
		return true, newError(codes.InvalidArgument, ReasonBadRequest, "SQL: a query is not an update; run it as a query (JDBC executeQuery)")
	case stmtCreate:
		if prepared {
			if err := drain(st.ctx, recv); err != nil {
				return true, err
			}
		}
		if err := declareTable(st.ctx, sink, st.principal, stmt, sql, mem); err != nil {
			return true, err
		}
		st.log.Info().Str("table", stmt.table).Msg("declared a table")
		st.acks.Done(updateResult(0))
		return true, nil
	}
	t, err := visibleTable(st.ctx, sink, mem, st.principal, stmt.table)
	if err != nil {
		return true, err
	}
	if stmt.params == 0 {
		rec, err := literalRows(t, stmt, mem)
		if err != nil {
			return true, err
		}
		defer rec.Release()
		if prepared {
			if err := drain(st.ctx, recv); err != nil {
				return true, err
			}
		}
		return true, st.writeRows(t, opts, rec)
	}
	if !prepared {
		return true, newError(codes.InvalidArgument, ReasonBadRequest, "SQL: a statement with parameters (?) must be prepared")
	}
	params, cols, err := parameterSchema(t, stmt)
	if err != nil {
		return true, err
	}
	st.bind = &sqlBind{table: t, params: params, cols: cols, mem: mem}
	st.subjectTable = t.subject
	st.desc, err = sqlDescriptor(t, opts)
	return false, err
}

// drain reads the rest of a stream whose data the statement does not use
// (a prepared statement without parameters sends an empty batch).
func drain(ctx context.Context, recv *receiver) error {
	for {
		_, err := recv.next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func updateResult(n int64) []byte {
	b, _ := proto.Marshal(&pb.DoPutUpdateResult{RecordCount: n})
	return b
}

// sqlDescriptor is the descriptor of a write to a declared table: its
// record options, overridden by the statement's headers (connection
// properties); exactly-once unless delivery says otherwise.
func sqlDescriptor(t *tableDecl, opts map[string]string) (*Descriptor, error) {
	values := map[string]string{}
	for k, v := range t.options {
		values[k] = v
	}
	for k, v := range opts {
		values[k] = v
	}
	d := &Descriptor{Topic: t.topic, Format: FormatJSON, CommitOnClose: true, KeyField: values["key_field"],
		TimestampField: values["timestamp_field"], Delivery: ExactlyOnce}
	if t.subject != "" { // written in its subject's schema, whatever the headers say
		d.Format, values["format"] = FormatAvro, string(FormatAvro)
	}
	if v, ok := values["format"]; ok && v != string(FormatJSON) && t.subject == "" {
		return nil, badDescriptor(fmt.Sprintf(`option "format": %q is not supported (supported: "json")`, clip(v)))
	}
	if v, ok := values["delivery"]; ok {
		switch Delivery(v) {
		case AtLeastOnce, ExactlyOnce:
			d.Delivery = Delivery(v)
		default:
			return nil, badDescriptor(fmt.Sprintf(`option "delivery": %q is not one of "at_least_once", "exactly_once"`, clip(v)))
		}
	}
	return d, nil
}

// writeRows writes literal VALUES rows to a declared table in one
// transaction and answers with their count.
func (st *stream) writeRows(t *tableDecl, opts map[string]string, rec arrow.RecordBatch) error {
	var err error
	if st.desc, err = sqlDescriptor(t, opts); err != nil {
		return err
	}
	st.delivery = st.desc.Delivery
	st.subjectTable = t.subject
	st.log = st.log.With().Str("topic", t.topic).Logger()
	if err := st.srv.authorize(st.principal, t.topic, st.delivery); err != nil {
		return err
	}
	topic, err := st.srv.sink.Lookup(st.ctx, t.topic)
	if err != nil {
		return err
	}
	if st.plan, err = st.srv.sink.NewPlan(t.schema, st.desc.recordOptions(), topic, st.register()); err != nil {
		return planError(err)
	}
	if err := st.openWriter(); err != nil {
		return err
	}
	st.srv.metrics.StreamOpened(string(st.delivery), st.kind())
	st.opened = true
	if err := st.produce(rec, 1); err != nil {
		return err
	}
	return st.finish()
}

// bindBatch turns a batch of bound parameters into a batch of the table:
// each parameter cast safely to its column's declared type (a parameter
// that cannot be is refused naming the column), other columns null, NOT
// NULL columns checked.
func (b *sqlBind) bindBatch(rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	if int(rec.NumCols()) != b.params.NumFields() {
		return nil, newError(codes.InvalidArgument, ReasonBadSchema,
			"INSERT INTO %q: the bound batch has %d columns, the statement %d parameters", b.table.topic, rec.NumCols(), b.params.NumFields())
	}
	rows := rec.NumRows()
	schema := b.table.schema
	cols := make([]arrow.Array, schema.NumFields())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	ctx := compute.WithAllocator(context.Background(), b.mem)
	for i, ci := range b.cols {
		f := schema.Field(ci)
		arr := rec.Column(i)
		if arrow.TypeEqual(arr.DataType(), f.Type) {
			arr.Retain()
			cols[ci] = arr
			continue
		}
		cast, err := compute.CastArray(ctx, arr, compute.SafeCastOptions(f.Type))
		if err != nil {
			return nil, newError(codes.InvalidArgument, ReasonBadSchema,
				"INSERT INTO %q: parameter %d (column %q) is %s, which cannot be converted to the column's %s: %v",
				b.table.topic, i+1, f.Name, arr.DataType(), f.Type, err)
		}
		cols[ci] = cast
	}
	for i, f := range schema.Fields() {
		if cols[i] == nil {
			cols[i] = array.MakeArrayOfNull(b.mem, f.Type, int(rows))
		}
	}
	out := array.NewRecordBatch(schema, cols, rows)
	if err := checkNotNull(b.table, out); err != nil {
		out.Release()
		return nil, err
	}
	return out, nil
}

// checkNotNull refuses a batch with a null in a NOT NULL column.
func checkNotNull(t *tableDecl, rec arrow.RecordBatch) error {
	for i, f := range t.schema.Fields() {
		if c := rec.Column(i); !f.Nullable && c.NullN() > 0 {
			row := 0
			for c.IsValid(row) {
				row++
			}
			return newError(codes.InvalidArgument, ReasonBadRow, "INSERT INTO %q: row %d: column %q is NOT NULL; nothing was written", t.topic, row, f.Name)
		}
	}
	return nil
}

// literalRows builds the batch of an INSERT's literal VALUES rows, in the
// table's schema (columns not named are null), through arrow's JSON
// reader: numbers, strings (dates and timestamps as text), booleans, NULL.
func literalRows(t *tableDecl, st *sqlStatement, mem memory.Allocator) (arrow.RecordBatch, error) {
	names := st.insertCols
	if names == nil {
		if n := len(st.rows[0]); n != t.schema.NumFields() {
			return nil, newError(codes.InvalidArgument, ReasonBadRequest,
				"INSERT INTO %q gives %d values, the table has %d columns; name the columns: INSERT INTO t (a, b) VALUES ...", t.topic, n, t.schema.NumFields())
		}
		names = fieldNames(t.schema)
	}
	var buf bytes.Buffer
	buf.WriteByte('[')
	for r, row := range st.rows {
		if r > 0 {
			buf.WriteByte(',')
		}
		obj := map[string]any{}
		for i, v := range row {
			idx := t.schema.FieldIndices(names[i])
			if len(idx) == 0 {
				return nil, newError(codes.InvalidArgument, ReasonBadRequest, "INSERT INTO %q: %q is not a column of the table", t.topic, clip(names[i]))
			}
			f := t.schema.Field(idx[0])
			switch v.kind {
			case valNull:
				obj[f.Name] = nil
			case valBool:
				obj[f.Name] = v.text == "true"
			case valNumber:
				obj[f.Name] = json.RawMessage(jsonNumber(v.text))
			case valString:
				switch f.Type.ID() {
				case arrow.BINARY:
					obj[f.Name] = base64.StdEncoding.EncodeToString([]byte(v.text)) // the reader decodes base64
				case arrow.TIMESTAMP:
					ts, err := parseSQLTimestamp(v.text)
					if err != nil {
						return nil, newError(codes.InvalidArgument, ReasonBadRequest, "INSERT INTO %q: VALUES row %d, column %q: %v", t.topic, r, f.Name, err)
					}
					obj[f.Name] = ts.UTC().Format(time.RFC3339Nano)
				default:
					obj[f.Name] = v.text
				}
			}
		}
		b, err := json.Marshal(obj)
		if err != nil {
			return nil, newError(codes.InvalidArgument, ReasonBadRequest, "INSERT INTO %q: VALUES row %d: %v", t.topic, r, err)
		}
		buf.Write(b)
	}
	buf.WriteByte(']')
	rec, _, err := array.RecordFromJSON(mem, t.schema, &buf)
	if err != nil {
		return nil, newError(codes.InvalidArgument, ReasonBadRequest, "INSERT INTO %q: a VALUES row does not fit the table's columns: %v", t.topic, clip(err.Error()))
	}
	if err := checkNotNull(t, rec); err != nil {
		rec.Release()
		return nil, err
	}
	return rec, nil
}

// parseSQLTimestamp reads a timestamp literal: '2026-01-02 03:04:05[.fff]'
// (UTC, as a JDBC Timestamp in a UTC JVM) or with a zone offset, a T, or a
// date alone.
func parseSQLTimestamp(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999",
		"2006-01-02 15:04:05.999999999Z07:00", time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a timestamp (write 'YYYY-MM-DD hh:mm:ss[.ffffff][+hh:mm]')", clip(s))
}

// jsonNumber makes a SQL number literal valid JSON: ".5" → "0.5", "5." → "5".
func jsonNumber(s string) string {
	neg := len(s) > 0 && s[0] == '-'
	if neg {
		s = s[1:]
	}
	if len(s) > 0 && s[0] == '.' {
		s = "0" + s
	}
	if i := bytes.IndexByte([]byte(s), '.'); i >= 0 && (i+1 == len(s) || s[i+1] < '0' || s[i+1] > '9') {
		s = s[:i] + s[i+1:]
	}
	for len(s) > 1 && s[0] == '0' && s[1] >= '0' && s[1] <= '9' { // JSON has no leading zeros
		s = s[1:]
	}
	if neg {
		s = "-" + s
	}
	if !json.Valid([]byte(s)) {
		return `"` + s + `"`
	}
	return s
}
