package flightsink

import (
	"errors"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
)

// sparkCreate is what Spark 4.1.0's JDBC writer sends for a DataFrame of
// string, long, byte, double, boolean, decimal, binary, date and timestamp
// columns, with createTableOptions "WITH (key_field = 'k')": note the space
// before each comma.
const sparkCreate = `CREATE TABLE t ("k" TEXT , "id" BIGINT NOT NULL, "b" BYTE , "d" DOUBLE PRECISION , "flag" BIT(1) , ` +
	`"dec" DECIMAL(10,2) , "bin" BLOB , "day" DATE , "ts" TIMESTAMP ) WITH (key_field = 'k')`

func TestParseCreateSparkDialect(t *testing.T) {
	st, err := parseSQL(sparkCreate)
	if err != nil {
		t.Fatal(err)
	}
	if st.kind != stmtCreate || st.table != "t" || st.ifNotExists {
		t.Fatalf("statement %+v", st)
	}
	want := []struct {
		name    string
		typ     arrow.DataType
		notNull bool
	}{
		{"k", arrow.BinaryTypes.String, false}, {"id", arrow.PrimitiveTypes.Int64, true},
		{"b", arrow.PrimitiveTypes.Int8, false}, {"d", arrow.PrimitiveTypes.Float64, false},
		{"flag", arrow.FixedWidthTypes.Boolean, false}, {"dec", &arrow.Decimal128Type{Precision: 10, Scale: 2}, false},
		{"bin", arrow.BinaryTypes.Binary, false}, {"day", arrow.FixedWidthTypes.Date32, false},
		{"ts", &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, false},
	}
	if len(st.columns) != len(want) {
		t.Fatalf("%d columns, want %d", len(st.columns), len(want))
	}
	for i, w := range want {
		c := st.columns[i]
		if c.name != w.name || !arrow.TypeEqual(c.typ, w.typ) || c.notNull != w.notNull {
			t.Errorf("column %d: %s %v notNull=%v, want %s %v %v", i, c.name, c.typ, c.notNull, w.name, w.typ, w.notNull)
		}
	}
	if len(st.with) != 1 || st.with[0] != [2]string{"key_field", "k"} {
		t.Errorf("WITH options %v", st.with)
	}
}

func TestParseTypeNames(t *testing.T) {
	for sqlType, want := range map[string]arrow.DataType{
		"INTEGER": arrow.PrimitiveTypes.Int32, "INT": arrow.PrimitiveTypes.Int32, "SMALLINT": arrow.PrimitiveTypes.Int16,
		"TINYINT": arrow.PrimitiveTypes.Int8, "BIGINT": arrow.PrimitiveTypes.Int64, "REAL": arrow.PrimitiveTypes.Float32,
		"FLOAT": arrow.PrimitiveTypes.Float64, "DOUBLE": arrow.PrimitiveTypes.Float64, "BOOLEAN": arrow.FixedWidthTypes.Boolean,
		"VARCHAR": arrow.BinaryTypes.String, "VARCHAR(255)": arrow.BinaryTypes.String, "CHAR(3)": arrow.BinaryTypes.String,
		"STRING": arrow.BinaryTypes.String, "CLOB": arrow.BinaryTypes.String, "BINARY": arrow.BinaryTypes.Binary,
		"VARBINARY": arrow.BinaryTypes.Binary, "TIME(6)": arrow.FixedWidthTypes.Time64us,
		"timestamp(3)":             &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"},
		"TIMESTAMP WITH TIME ZONE": &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"},
		"DECIMAL(40,4)":            &arrow.Decimal256Type{Precision: 40, Scale: 4},
		"CHARACTER VARYING(10)":    arrow.BinaryTypes.String,
	} {
		st, err := parseSQL(`create table if not exists "x" (c ` + sqlType + ` null)`)
		if err != nil {
			t.Errorf("%s: %v", sqlType, err)
			continue
		}
		if !st.ifNotExists || !arrow.TypeEqual(st.columns[0].typ, want) {
			t.Errorf("%s: %v, want %v", sqlType, st.columns[0].typ, want)
		}
	}
}

func TestParseInsert(t *testing.T) {
	st, err := parseSQL("INSERT INTO \"Orders\" (\"id\", `name`) VALUES (?, ?)")
	if err != nil {
		t.Fatal(err)
	}
	if st.kind != stmtInsert || st.table != "Orders" || st.params != 2 || strings.Join(st.insertCols, ",") != "id,name" {
		t.Fatalf("%+v", st)
	}
	st, err = parseSQL("insert into cat.sch.orders values (1, 'it''s'), (-2.5e3, NULL), (TRUE, DATE '2026-01-02');")
	if err != nil {
		t.Fatal(err)
	}
	if st.table != "orders" || st.params != 0 || len(st.rows) != 3 || st.rows[0][1].text != "it's" || st.rows[1][0].text != "-2.5e3" ||
		st.rows[2][1] != (sqlValue{valString, "2026-01-02"}) {
		t.Fatalf("%+v", st)
	}
	if st, err := parseSQL("INSERT INTO orders-v2-2026 VALUES (?, ?)"); err != nil || st.table != "orders-v2-2026" {
		t.Fatalf("a topic name with dashes: %+v %v", st, err)
	}
	if _, err := parseSQL("INSERT INTO orders - v2 VALUES (?)"); err == nil {
		t.Fatal("accepted a spaced dash in a table name")
	}
	for _, bad := range []string{"INSERT INTO t VALUES (?, 1)", "INSERT INTO t VALUES (1), (1, 2)", "INSERT INTO t (a) VALUES (1, 2)",
		"INSERT INTO t VALUES (?), (?)", "INSERT t VALUES (1)", "INSERT INTO t VALUES (1) junk"} {
		if _, err := parseSQL(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

func TestParseProbesAndRefusals(t *testing.T) {
	for _, q := range []string{`SELECT * FROM t WHERE 1=0`, `SELECT 1 FROM "t" WHERE 1 = 0`, `select a, b from s.t limit 0`,
		`SELECT * FROM t AS x WHERE FALSE`, `SELECT count(*) FROM t WHERE 1<>1`} {
		st, err := parseSQL(q)
		if err != nil || st.kind != stmtProbe || st.table != "t" {
			t.Errorf("%s: %+v %v", q, st, err)
		}
	}
	for _, q := range []string{`SELECT 1`, `SELECT * FROM t`, `SELECT * FROM t WHERE 1=1`, `SELECT * FROM t LIMIT 5`, `UPDATE t SET a = 1`} {
		_, err := parseSQL(q)
		var se *sqlError
		if !errors.As(err, &se) || !strings.Contains(se.msg, "unsupported") {
			t.Errorf("%s: %v, want unsupported", q, err)
		}
	}
	if st, err := parseSQL(`DROP TABLE IF EXISTS "t"`); err != nil || st.kind != stmtDrop || st.table != "t" {
		t.Errorf("drop: %+v %v", st, err)
	}
	if st, err := parseSQL(`TRUNCATE TABLE t`); err != nil || st.kind != stmtTruncate {
		t.Errorf("truncate: %+v %v", st, err)
	}
	for _, bad := range []string{`CREATE TABLE t (a BIT(8))`, `CREATE TABLE t (a FOO)`, `CREATE TABLE t (a INT, a INT)`,
		`CREATE TABLE t ()`, `CREATE TABLE t (a INT) WITH (key_field =)`, `CREATE TABLE t (a "INT")`} {
		if _, err := parseSQL(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// FuzzParseSQL: any text parses or gives an *sqlError, never a panic; an
// accepted statement names a table, and a CREATE TABLE has typed columns.
func FuzzParseSQL(f *testing.F) {
	for _, s := range []string{sparkCreate, `INSERT INTO "t" ("a", "b") VALUES (?, ?)`, `insert into t values (1, 'x'), (2, NULL)`,
		`SELECT * FROM t WHERE 1=0`, `SELECT 1 FROM t LIMIT 0`, `DROP TABLE t`, `TRUNCATE t`, `CREATE TABLE t (a DECIMAL(10,2))`,
		`/* c */ CREATE TABLE "x""y" (a INT) -- tail`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		st, err := parseSQL(sql)
		if err != nil {
			var se *sqlError
			if !errors.As(err, &se) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if st.table == "" {
			t.Fatalf("accepted %q without a table", sql)
		}
		if st.kind == stmtCreate {
			if len(st.columns) == 0 {
				t.Fatalf("accepted %q without columns", sql)
			}
			for _, c := range st.columns {
				if c.typ == nil || c.name == "" {
					t.Fatalf("accepted %q with column %+v", sql, c)
				}
			}
		}
		if st.kind == stmtInsert && (len(st.rows) == 0 || st.params > 0 && st.params != len(st.rows[0])) {
			t.Fatalf("accepted %q with rows %v params %d", sql, st.rows, st.params)
		}
	})
}
