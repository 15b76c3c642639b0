package flightsink

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
)

// The few SQL statements flightsink runs, in the dialects tools emit them
// (Spark's JDBC writer, Java ADBC, DBeaver-style editors): CREATE TABLE,
// INSERT ... VALUES, schema probes (SELECT ... WHERE 1=0, LIMIT 0), and
// DROP TABLE / TRUNCATE, which are recognised to be refused. The grammar
// is small and written out here: the Go SQL parsers that are maintained
// either parse MySQL's dialect (where "x" is a string, not a column) or
// need cgo (libpg_query), and none takes Spark's type names (BYTE, BIT(1))
// and WITH (...) table options as they come. FuzzParseSQL fuzzes it.

// maxSQLBytes bounds a statement's text (prepared statement handles carry
// it, so this also bounds a handle).
const maxSQLBytes = 1 << 20

// stmtKind is what a statement does.
type stmtKind int

const (
	stmtCreate stmtKind = iota + 1
	stmtInsert
	stmtProbe
	stmtDrop
	stmtTruncate
)

// sqlStatement is a parsed statement.
type sqlStatement struct {
	kind        stmtKind
	table       string // the table (topic): the last part of a qualified name
	ifNotExists bool
	columns     []sqlColumn // CREATE TABLE
	with        [][2]string // CREATE TABLE ... WITH (name = value, ...), in order
	insertCols  []string    // INSERT INTO t (cols): nil means every column, in order
	rows        [][]sqlValue
	params      int // INSERT: how many ? parameters
}

// sqlColumn is a column of CREATE TABLE.
type sqlColumn struct {
	name    string
	sqlType string // as written, normalised: "DECIMAL(10,2)"
	typ     arrow.DataType
	notNull bool
}

// valueKind is what a VALUES item is.
type valueKind int

const (
	valParam valueKind = iota + 1
	valNull
	valBool
	valNumber
	valString
)

// sqlValue is one item of a VALUES row.
type sqlValue struct {
	kind valueKind
	text string // number or string text; "true"/"false"
}

// sqlError is a statement the parser refuses: the message says where.
type sqlError struct{ msg string }

func (e *sqlError) Error() string { return e.msg }

type tokKind int

const (
	tokEOF    tokKind = iota
	tokWord           // a bare word: keyword or identifier
	tokQuoted         // a quoted identifier: "x" or `x`
	tokString         // 'text'
	tokNumber
	tokPunct
)

type token struct {
	kind tokKind
	text string // words as written; quoted identifiers and strings unescaped
	pos  int    // byte offset in the statement
}

// lexSQL splits a statement into tokens, skipping spaces and comments.
func lexSQL(s string) ([]token, error) {
	var out []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				return nil, &sqlError{fmt.Sprintf("unterminated comment at offset %d", i)}
			}
			i += end + 4
		case c == '\'' || c == '"' || c == '`':
			var b strings.Builder
			j := i + 1
			for {
				if j >= len(s) {
					return nil, &sqlError{fmt.Sprintf("unterminated %c at offset %d", c, i)}
				}
				if s[j] == c {
					if j+1 < len(s) && s[j+1] == c { // doubled: an escaped quote
						b.WriteByte(c)
						j += 2
						continue
					}
					break
				}
				b.WriteByte(s[j])
				j++
			}
			kind := tokQuoted
			if c == '\'' {
				kind = tokString
			}
			out = append(out, token{kind, b.String(), i})
			i = j + 1
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			j := i
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
				j++
			}
			if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
				k := j + 1
				if k < len(s) && (s[k] == '+' || s[k] == '-') {
					k++
				}
				if k < len(s) && s[k] >= '0' && s[k] <= '9' {
					for j = k; j < len(s) && s[j] >= '0' && s[j] <= '9'; j++ {
					}
				}
			}
			out = append(out, token{tokNumber, s[i:j], i})
			i = j
		case c == '_' || c < utf8.RuneSelf && unicode.IsLetter(rune(c)) || c >= utf8.RuneSelf:
			j := i
			for j < len(s) {
				r, n := utf8.DecodeRuneInString(s[j:])
				if r != '_' && r != '$' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
					break
				}
				j += n
			}
			if j == i { // a rune that starts no word
				return nil, &sqlError{fmt.Sprintf("unexpected character %q at offset %d", s[i:i+1], i)}
			}
			out = append(out, token{tokWord, s[i:j], i})
			i = j
		case c == '<' && i+1 < len(s) && (s[i+1] == '>' || s[i+1] == '='), c == '>' && i+1 < len(s) && s[i+1] == '=',
			c == '!' && i+1 < len(s) && s[i+1] == '=':
			out = append(out, token{tokPunct, s[i : i+2], i})
			i += 2
		case strings.IndexByte("(),;=?.*-+<>", c) >= 0:
			out = append(out, token{tokPunct, s[i : i+1], i})
			i++
		default:
			return nil, &sqlError{fmt.Sprintf("unexpected character %q at offset %d", s[i:i+1], i)}
		}
	}
	return append(out, token{tokEOF, "", len(s)}), nil
}

// sqlParser is a recursive-descent parser over the tokens.
type sqlParser struct {
	toks []token
	i    int
}

func (p *sqlParser) peek() token { return p.toks[p.i] }
func (p *sqlParser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

// isWord reports whether the next token is the keyword kw.
func (p *sqlParser) isWord(kw string) bool {
	t := p.peek()
	return t.kind == tokWord && strings.EqualFold(t.text, kw)
}

func (p *sqlParser) isPunct(s string) bool {
	t := p.peek()
	return t.kind == tokPunct && t.text == s
}

func (p *sqlParser) acceptWord(kw string) bool {
	if p.isWord(kw) {
		p.i++
		return true
	}
	return false
}

func (p *sqlParser) acceptPunct(s string) bool {
	if p.isPunct(s) {
		p.i++
		return true
	}
	return false
}

func (p *sqlParser) fail(want string) error {
	t := p.peek()
	got := "the end of the statement"
	if t.kind != tokEOF {
		got = strconv.Quote(clip(t.text))
	}
	return &sqlError{fmt.Sprintf("expected %s at offset %d, found %s", want, t.pos, got)}
}

func (p *sqlParser) expectWord(kw string) error {
	if !p.acceptWord(kw) {
		return p.fail(kw)
	}
	return nil
}

func (p *sqlParser) expectPunct(s string) error {
	if !p.acceptPunct(s) {
		return p.fail(strconv.Quote(s))
	}
	return nil
}

// ident reads an identifier, bare or quoted.
func (p *sqlParser) ident(what string) (string, error) {
	t := p.peek()
	if t.kind != tokWord && t.kind != tokQuoted || t.kind == tokQuoted && t.text == "" {
		return "", p.fail(what)
	}
	p.i++
	return t.text, nil
}

// tableName reads [catalog.][schema.]table; the table is the last part
// (topics live in one unnamed schema, so qualifiers name nothing).
func (p *sqlParser) tableName() (string, error) {
	name, err := p.topicPart()
	for err == nil && p.acceptPunct(".") {
		name, err = p.topicPart()
	}
	return name, err
}

// topicPart reads one part of a table name: an identifier, where a bare
// one may also hold "-" between words and digits written without spaces
// (orders-v2): Kafka topic names do, and Java ADBC sends them unquoted.
func (p *sqlParser) topicPart() (string, error) {
	t := p.peek()
	name, err := p.ident("a table name")
	if err != nil || t.kind != tokWord {
		return name, err
	}
	end := t.pos + len(t.text)
	for {
		dash, after := p.toks[p.i], p.toks[min(p.i+1, len(p.toks)-1)]
		if dash.kind != tokPunct || dash.text != "-" || dash.pos != end || after.pos != end+1 ||
			after.kind != tokWord && after.kind != tokNumber {
			return name, nil
		}
		name += "-" + after.text
		end = after.pos + len(after.text)
		p.i += 2
	}
}

// end accepts an optional ";" and requires the end of the statement.
func (p *sqlParser) end() error {
	p.acceptPunct(";")
	if p.peek().kind != tokEOF {
		return p.fail("the end of the statement")
	}
	return nil
}

// parseSQL parses one statement. A statement of another kind is an
// *sqlError whose message starts "unsupported".
func parseSQL(sql string) (*sqlStatement, error) {
	if len(sql) > maxSQLBytes {
		return nil, &sqlError{fmt.Sprintf("the statement is %d bytes, over the %d this server takes", len(sql), maxSQLBytes)}
	}
	toks, err := lexSQL(sql)
	if err != nil {
		return nil, err
	}
	p := &sqlParser{toks: toks}
	switch {
	case p.acceptWord("CREATE"):
		return p.create()
	case p.acceptWord("INSERT"):
		return p.insert()
	case p.acceptWord("SELECT"):
		return p.probe()
	case p.acceptWord("DROP"):
		if err := p.expectWord("TABLE"); err != nil {
			return nil, err
		}
		if p.acceptWord("IF") {
			if err := p.expectWord("EXISTS"); err != nil {
				return nil, err
			}
		}
		name, err := p.tableName()
		return &sqlStatement{kind: stmtDrop, table: name}, err
	case p.acceptWord("TRUNCATE"):
		p.acceptWord("TABLE")
		name, err := p.tableName()
		return &sqlStatement{kind: stmtTruncate, table: name}, err
	}
	first := p.peek().text
	return nil, &sqlError{fmt.Sprintf("unsupported statement %q", clip(strings.ToUpper(first)))}
}

func (p *sqlParser) create() (*sqlStatement, error) {
	if p.acceptWord("TEMPORARY") || p.acceptWord("TEMP") {
		return nil, &sqlError{"unsupported: temporary tables (a topic outlives the connection)"}
	}
	if err := p.expectWord("TABLE"); err != nil {
		return nil, err
	}
	st := &sqlStatement{kind: stmtCreate}
	if p.acceptWord("IF") {
		if err := p.expectWord("NOT"); err != nil {
			return nil, err
		}
		if err := p.expectWord("EXISTS"); err != nil {
			return nil, err
		}
		st.ifNotExists = true
	}
	var err error
	if st.table, err = p.tableName(); err != nil {
		return nil, err
	}
	if err := p.expectPunct("("); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for {
		col, err := p.column()
		if err != nil {
			return nil, err
		}
		if seen[col.name] {
			return nil, &sqlError{fmt.Sprintf("column %q is declared twice", clip(col.name))}
		}
		seen[col.name] = true
		st.columns = append(st.columns, col)
		if p.acceptPunct(")") {
			break
		}
		if err := p.expectPunct(","); err != nil {
			return nil, err
		}
	}
	if p.acceptWord("WITH") {
		if err := p.expectPunct("("); err != nil {
			return nil, err
		}
		for {
			name, err := p.ident("an option name")
			if err != nil {
				return nil, err
			}
			for p.acceptPunct(".") { // dotted names: json.timestamp_format
				part, err := p.ident("an option name")
				if err != nil {
					return nil, err
				}
				name += "." + part
			}
			if err := p.expectPunct("="); err != nil {
				return nil, err
			}
			v := p.next()
			if v.kind != tokString && v.kind != tokNumber && v.kind != tokWord && v.kind != tokQuoted {
				p.i--
				return nil, p.fail("an option value")
			}
			st.with = append(st.with, [2]string{strings.ToLower(name), v.text})
			if p.acceptPunct(")") {
				break
			}
			if err := p.expectPunct(","); err != nil {
				return nil, err
			}
		}
	}
	return st, p.end()
}

// column reads name TYPE [NOT NULL | NULL].
func (p *sqlParser) column() (sqlColumn, error) {
	name, err := p.ident("a column name")
	if err != nil {
		return sqlColumn{}, err
	}
	t := p.peek()
	if t.kind != tokWord {
		return sqlColumn{}, p.fail(fmt.Sprintf("the type of column %q", clip(name)))
	}
	p.i++
	words := []string{strings.ToUpper(t.text)}
	switch words[0] {
	case "DOUBLE":
		if p.acceptWord("PRECISION") {
			words = append(words, "PRECISION")
		}
	case "CHARACTER", "CHAR", "NATIONAL":
		if p.acceptWord("VARYING") {
			words = append(words, "VARYING")
		}
	}
	var args []int
	if p.acceptPunct("(") {
		for {
			n := p.next()
			v, err := strconv.Atoi(n.text)
			if n.kind != tokNumber || err != nil || v < 0 {
				p.i--
				return sqlColumn{}, p.fail(fmt.Sprintf("a length, precision or scale in the type of column %q", clip(name)))
			}
			args = append(args, v)
			if p.acceptPunct(")") {
				break
			}
			if err := p.expectPunct(","); err != nil {
				return sqlColumn{}, err
			}
		}
	}
	zone := false
	if words[0] == "TIMESTAMP" || words[0] == "TIME" {
		if p.isWord("WITH") || p.isWord("WITHOUT") {
			with := strings.EqualFold(p.next().text, "WITH")
			if err := p.expectWord("TIME"); err != nil {
				return sqlColumn{}, err
			}
			if err := p.expectWord("ZONE"); err != nil {
				return sqlColumn{}, err
			}
			zone = with
		}
	}
	written := strings.Join(words, " ")
	if len(args) > 0 {
		parts := make([]string, len(args))
		for i, a := range args {
			parts[i] = strconv.Itoa(a)
		}
		written += "(" + strings.Join(parts, ",") + ")"
	}
	if zone {
		written += " WITH TIME ZONE"
	}
	typ, err := arrowTypeOf(strings.Join(words, " "), args, zone)
	if err != nil {
		return sqlColumn{}, &sqlError{fmt.Sprintf("column %q: %v", clip(name), err)}
	}
	col := sqlColumn{name: name, sqlType: written, typ: typ}
	for {
		switch {
		case p.acceptWord("NOT"):
			if err := p.expectWord("NULL"); err != nil {
				return sqlColumn{}, err
			}
			col.notNull = true
			continue
		case p.acceptWord("NULL"):
			continue
		}
		return col, nil
	}
}

// sqlTypeNames lists the accepted type names, for error messages.
const sqlTypeNames = "BOOLEAN, BIT(1), TINYINT, BYTE, SMALLINT, INTEGER, INT, BIGINT, REAL, FLOAT, DOUBLE [PRECISION], " +
	"DECIMAL(p,s), NUMERIC(p,s), TEXT, STRING, VARCHAR(n), CHAR(n), CLOB, BLOB, BINARY, VARBINARY, BYTEA, DATE, TIME(p), TIMESTAMP(p)"

// arrowTypeOf maps a SQL type (name upper-cased, its arguments) to the
// Arrow type of the column. TIMESTAMP is microseconds in UTC (a JDBC
// Timestamp has no zone; tools are told to run in UTC); TIME is
// microseconds; lengths of text and binary types bound nothing.
func arrowTypeOf(name string, args []int, zone bool) (arrow.DataType, error) {
	nargs := func(max int) error {
		if len(args) > max {
			return fmt.Errorf("%s takes at most %d arguments", name, max)
		}
		return nil
	}
	switch name {
	case "BOOLEAN", "BOOL":
		return arrow.FixedWidthTypes.Boolean, nargs(0)
	case "BIT":
		if len(args) > 1 || len(args) == 1 && args[0] != 1 {
			return nil, fmt.Errorf("BIT(%v): only BIT and BIT(1), a boolean, are supported", args)
		}
		return arrow.FixedWidthTypes.Boolean, nil
	case "TINYINT", "BYTE", "INT1":
		return arrow.PrimitiveTypes.Int8, nargs(1)
	case "SMALLINT", "INT2", "SHORT":
		return arrow.PrimitiveTypes.Int16, nargs(1)
	case "INTEGER", "INT", "INT4", "MEDIUMINT":
		return arrow.PrimitiveTypes.Int32, nargs(1)
	case "BIGINT", "INT8", "LONG":
		return arrow.PrimitiveTypes.Int64, nargs(1)
	case "REAL", "FLOAT4":
		return arrow.PrimitiveTypes.Float32, nargs(0)
	case "FLOAT":
		if len(args) == 1 && args[0] <= 24 {
			return arrow.PrimitiveTypes.Float32, nil
		}
		return arrow.PrimitiveTypes.Float64, nargs(1)
	case "DOUBLE", "DOUBLE PRECISION", "FLOAT8":
		return arrow.PrimitiveTypes.Float64, nargs(0)
	case "DECIMAL", "NUMERIC", "DEC", "NUMBER":
		if err := nargs(2); err != nil {
			return nil, err
		}
		prec, scale := 38, 0
		if len(args) > 0 {
			prec = args[0]
		}
		if len(args) > 1 {
			scale = args[1]
		}
		if prec < 1 || prec > 76 || scale > prec {
			return nil, fmt.Errorf("%s(%d,%d): precision must be 1-76 and scale at most the precision", name, prec, scale)
		}
		if prec <= 38 {
			return &arrow.Decimal128Type{Precision: int32(prec), Scale: int32(scale)}, nil
		}
		return &arrow.Decimal256Type{Precision: int32(prec), Scale: int32(scale)}, nil
	case "TEXT", "STRING", "VARCHAR", "CHAR", "CHARACTER", "CHARACTER VARYING", "CHAR VARYING", "NVARCHAR", "NCHAR",
		"CLOB", "NCLOB", "LONGVARCHAR", "LONGNVARCHAR", "JSON", "UUID":
		return arrow.BinaryTypes.String, nargs(1)
	case "BLOB", "BINARY", "VARBINARY", "BYTEA", "LONGVARBINARY", "BYTES":
		return arrow.BinaryTypes.Binary, nargs(1)
	case "DATE":
		return arrow.FixedWidthTypes.Date32, nargs(0)
	case "TIME":
		return arrow.FixedWidthTypes.Time64us, nargs(1)
	case "TIMESTAMP", "DATETIME", "TIMESTAMPTZ":
		return &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, nargs(1)
	}
	return nil, fmt.Errorf("type %s is not supported (supported: %s)", clip(name), sqlTypeNames)
}

func (p *sqlParser) insert() (*sqlStatement, error) {
	if err := p.expectWord("INTO"); err != nil {
		return nil, err
	}
	st := &sqlStatement{kind: stmtInsert}
	var err error
	if st.table, err = p.tableName(); err != nil {
		return nil, err
	}
	if p.acceptPunct("(") {
		st.insertCols = []string{}
		for {
			c, err := p.ident("a column name")
			if err != nil {
				return nil, err
			}
			st.insertCols = append(st.insertCols, c)
			if p.acceptPunct(")") {
				break
			}
			if err := p.expectPunct(","); err != nil {
				return nil, err
			}
		}
	}
	if err := p.expectWord("VALUES"); err != nil {
		return nil, err
	}
	for {
		if err := p.expectPunct("("); err != nil {
			return nil, err
		}
		var row []sqlValue
		for {
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			if v.kind == valParam {
				st.params++
			}
			row = append(row, v)
			if p.acceptPunct(")") {
				break
			}
			if err := p.expectPunct(","); err != nil {
				return nil, err
			}
		}
		if len(st.rows) > 0 && len(row) != len(st.rows[0]) {
			return nil, &sqlError{fmt.Sprintf("VALUES row %d has %d values, row 0 has %d", len(st.rows), len(row), len(st.rows[0]))}
		}
		st.rows = append(st.rows, row)
		if !p.acceptPunct(",") {
			break
		}
	}
	if st.params > 0 && (len(st.rows) != 1 || st.params != len(st.rows[0])) {
		return nil, &sqlError{"unsupported: parameters (?) mixed with literal values, or in more than one VALUES row; " +
			"use one row of parameters, or literal values only"}
	}
	if st.insertCols != nil && len(st.insertCols) != len(st.rows[0]) {
		return nil, &sqlError{fmt.Sprintf("INSERT names %d columns but VALUES rows have %d values", len(st.insertCols), len(st.rows[0]))}
	}
	return st, p.end()
}

// value reads ?, NULL, TRUE, FALSE, a number (signed), a string, or a
// typed literal (DATE '...', TIMESTAMP '...', TIME '...').
func (p *sqlParser) value() (sqlValue, error) {
	t := p.next()
	switch {
	case t.kind == tokPunct && t.text == "?":
		return sqlValue{kind: valParam}, nil
	case t.kind == tokPunct && (t.text == "-" || t.text == "+"):
		n := p.next()
		if n.kind != tokNumber {
			p.i--
			return sqlValue{}, p.fail("a number after " + t.text)
		}
		if t.text == "-" {
			return sqlValue{kind: valNumber, text: "-" + n.text}, nil
		}
		return sqlValue{kind: valNumber, text: n.text}, nil
	case t.kind == tokNumber:
		return sqlValue{kind: valNumber, text: t.text}, nil
	case t.kind == tokString:
		return sqlValue{kind: valString, text: t.text}, nil
	case t.kind == tokWord:
		switch strings.ToUpper(t.text) {
		case "NULL":
			return sqlValue{kind: valNull}, nil
		case "TRUE", "FALSE":
			return sqlValue{kind: valBool, text: strings.ToLower(t.text)}, nil
		case "DATE", "TIMESTAMP", "TIME":
			if s := p.peek(); s.kind == tokString {
				p.i++
				return sqlValue{kind: valString, text: s.text}, nil
			}
		}
	}
	p.i--
	return sqlValue{}, p.fail("a value (?, NULL, TRUE, FALSE, a number or a 'string')")
}

// probe reads SELECT <anything> FROM t followed by WHERE 1=0 (or another
// always-false condition) or LIMIT 0: a query for the table's schema that
// returns no rows. Any other query is unsupported.
func (p *sqlParser) probe() (*sqlStatement, error) {
	depth := 0
	for {
		t := p.peek()
		if t.kind == tokEOF {
			return nil, &sqlError{"unsupported query: only schema probes (SELECT ... FROM t WHERE 1=0, or ... LIMIT 0) are answered"}
		}
		if depth == 0 && t.kind == tokWord && strings.EqualFold(t.text, "FROM") {
			break
		}
		if t.kind == tokPunct && t.text == "(" {
			depth++
		} else if t.kind == tokPunct && t.text == ")" {
			depth--
		}
		p.i++
	}
	p.i++
	name, err := p.tableName()
	if err != nil {
		return nil, err
	}
	st := &sqlStatement{kind: stmtProbe, table: name}
	p.acceptWord("AS")
	if t := p.peek(); t.kind == tokWord && !p.isWord("WHERE") && !p.isWord("LIMIT") || t.kind == tokQuoted {
		p.i++ // an alias
	}
	empty := false
	if p.acceptWord("WHERE") {
		switch {
		case p.acceptWord("FALSE"):
			empty = true
		case p.peek().kind == tokNumber:
			a := p.next().text
			op := p.next()
			b := p.next()
			empty = op.kind == tokPunct && b.kind == tokNumber &&
				(op.text == "=" && a != b.text || (op.text == "<>" || op.text == "!=") && a == b.text)
		}
		if !empty {
			return nil, &sqlError{"unsupported query: only schema probes (SELECT ... FROM t WHERE 1=0, or ... LIMIT 0) are answered"}
		}
	}
	if p.acceptWord("LIMIT") {
		n := p.next()
		if n.kind != tokNumber || n.text != "0" {
			return nil, &sqlError{"unsupported query: only schema probes (SELECT ... FROM t WHERE 1=0, or ... LIMIT 0) are answered"}
		}
		empty = true
	}
	if !empty {
		return nil, &sqlError{"unsupported query: only schema probes (SELECT ... FROM t WHERE 1=0, or ... LIMIT 0) are answered"}
	}
	return st, p.end()
}
