package put

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightsink/flightsink/clients/go/fsclient"
	"github.com/flightsink/flightsink/internal/puttest"
)

// TestPutFlagsCoverTheClientDescriptor: the flag table names every key of
// the Go client's Descriptor (whose keys TestGoClientReachesEveryDescriptorKey
// checks against the server's parser; cmd/flightsink's
// TestPutHasAFlagForEveryDescriptorKey checks the server's list), each once, and a flag reaches its key.
func TestPutFlagsCoverTheClientDescriptor(t *testing.T) {
	var table, client []string
	flags := map[string]bool{}
	for _, f := range descriptorFlags {
		table = append(table, f.key)
		if flags[f.flagName()] {
			t.Errorf("flag --%s is defined twice", f.flagName())
		}
		flags[f.flagName()] = true
	}
	for k := range descriptorFieldTypes() {
		client = append(client, k)
	}
	sort.Strings(table)
	sort.Strings(client)
	if !reflect.DeepEqual(table, client) {
		t.Errorf("put's descriptor flags are for\n%v\nthe Go client's Descriptor has\n%v", table, client)
	}
	o, files, err := parse([]string{"--topic", "orders", "a.csv", "--key-field", "id", "--value-format", "json",
		"--exclude-fields", "a,b", "--exclude-fields", "c", "--header", "src=put", "--header", "k=v=w",
		"--commit-on-close=false", "--provenance-headers", "--max-bad-rows", "0.5", "--writer-id", "w1", "b.csv"})
	if err != nil {
		t.Fatal(err)
	}
	no, yes := false, true
	want := fsclient.Descriptor{Topic: "orders", KeyField: "id", Format: "json", ExcludeFields: []string{"a", "b", "c"},
		Headers: map[string]string{"src": "put", "k": "v=w"}, CommitOnClose: &no, ProvenanceHeaders: &yes, MaxBadRows: 0.5, WriterID: "w1"}
	if !reflect.DeepEqual(o.desc, want) || !reflect.DeepEqual(files, []string{"a.csv", "b.csv"}) {
		t.Errorf("parsed %+v %v\nwant %+v", o.desc, files, want)
	}
}

// TestPutCommandLineRefusals: bad flags are refused naming the flag.
func TestPutCommandLineRefusals(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"a.csv"}, "--topic is required"},
		{[]string{"--topic", "t"}, "name at least one FILE"},
		{[]string{"--topic", "t", "--format", "xls", "a"}, `--format "xls" is not one of`},
		{[]string{"--topic", "t", "--schema", "id:int65", "a"}, `column "id": type "int65" is not one of`},
		{[]string{"--topic", "t", "--schema", "id", "a"}, `"id" is not NAME:TYPE`},
		{[]string{"--topic", "t", "--checkpoint-rows", "0", "a"}, "--checkpoint-rows 0: must be at least 1"},
		{[]string{"--topic", "t", "-", "-"}, "stdin) is named more than once"},
		{[]string{"--topic", "t", "--header", "novalue", "a"}, `"novalue" is not KEY=VALUE`},
		{[]string{"--topic", "t", "--max-bad-rows", "lots", "a"}, `"lots" is not a number`},
		{[]string{"--topic", "t", "--csv-delimiter", "ab", "a"}, `--csv-delimiter "ab" is not one character`},
	} {
		o := os.Stderr
		os.Stderr, _ = os.Open(os.DevNull) // the flag package prints the usage
		_, _, err := parse(c.args)
		os.Stderr = o
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v; want an error with %q", c.args, err, c.want)
		}
	}
}

// TestPutSchemaFlag: --schema's types, zones, decimals and NOT NULL.
func TestPutSchemaFlag(t *testing.T) {
	s, err := parseSchemaFlag("id:int64 not null, name:string, ts:timestamp[ms,UTC], local:timestamp[ns], d:date32, " +
		"price:decimal(10,2), big:decimal(40,0), ok:bool, raw:binary, f:float")
	if err != nil {
		t.Fatal(err)
	}
	want := "schema:\n  fields: 10\n    - id: type=int64\n    - name: type=utf8, nullable\n" +
		"    - ts: type=timestamp[ms, tz=UTC], nullable\n    - local: type=timestamp[ns], nullable\n" +
		"    - d: type=date32, nullable\n    - price: type=decimal(10, 2), nullable\n" +
		"    - big: type=decimal256(40, 0), nullable\n    - ok: type=bool, nullable\n" +
		"    - raw: type=binary, nullable\n    - f: type=float32, nullable"
	if s.String() != want {
		t.Errorf("schema\n%s\nwant\n%s", s, want)
	}
	if _, err := parseSchemaFlag("a:int64,a:string"); err == nil || !strings.Contains(err.Error(), `column "a" is named twice`) {
		t.Errorf("a column twice: %v", err)
	}
}

// TestPutInfersCSV: the narrowest type every sampled value has, nulls
// ignored, mixed numbers widened, anything else mixed is text.
func TestPutInfersCSV(t *testing.T) {
	in := "i,f,b,d,ts,s,mixed,empty\n" +
		"1,1,true,2026-01-02,2026-01-02T03:04:05Z,x,1,\n" +
		"2,2.5,false,2026-01-03,2026-01-02T03:04:05.5+01:00,y,a,NULL\n" +
		",,,,,,,\n"
	s, replay, err := sampleCSV("in.csv", strings.NewReader(in), ',', 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	types := []arrow.DataType{arrow.PrimitiveTypes.Int64, arrow.PrimitiveTypes.Float64, arrow.FixedWidthTypes.Boolean,
		arrow.FixedWidthTypes.Date32, tsType, arrow.BinaryTypes.String, arrow.BinaryTypes.String, arrow.BinaryTypes.String}
	for i, f := range s.Fields() {
		if !arrow.TypeEqual(f.Type, types[i]) {
			t.Errorf("column %s: %s, want %s", f.Name, f.Type, types[i])
		}
	}
	if all, _ := io.ReadAll(replay); string(all) != in {
		t.Errorf("replayed %q, want the whole input", all)
	}
	// only the first row sampled: f is int64 then
	s, _, _ = sampleCSV("in.csv", strings.NewReader(in), ',', 1, nil)
	if f := s.Field(1); f.Type.ID() != arrow.INT64 {
		t.Errorf("one row sampled: f is %s, want int64", f.Type)
	}
	_, _, err = sampleCSV("in.csv", strings.NewReader(in), ',', 1, arrow.NewSchema([]arrow.Field{{Name: "x", Type: tsType}}, nil))
	if err == nil || !strings.Contains(err.Error(), "in.csv: the CSV header names the columns i, f, b") {
		t.Errorf("a schema with other names: %v", err)
	}
}

// TestPutInfersJSONLines: columns in the order they first appear, nested
// objects and arrays, widening, and a clear refusal of mixed kinds.
func TestPutInfersJSONLines(t *testing.T) {
	in := `{"id":1,"tags":["a"],"loc":{"lat":1,"lon":2.5},"at":"2026-01-02T03:04:05Z"}` + "\n" +
		`{"id":2,"tags":[],"loc":{"lat":1.5,"lon":null},"at":null,"extra":true,"none":null}` + "\n"
	s, replay, err := inferJSONL("in.jsonl", strings.NewReader(in), 10)
	if err != nil {
		t.Fatal(err)
	}
	want := "schema:\n  fields: 6\n    - id: type=int64, nullable\n    - tags: type=list<item: utf8, nullable>, nullable\n" +
		"    - loc: type=struct<lat: float64 nullable, lon: float64 nullable>, nullable\n    - at: type=timestamp[us, tz=UTC], nullable\n" +
		"    - extra: type=bool, nullable\n    - none: type=utf8, nullable"
	if s.String() != want {
		t.Errorf("schema\n%s\nwant\n%s", s, want)
	}
	if all, _ := io.ReadAll(replay); string(all) != in {
		t.Errorf("replayed %q, want the whole input", all)
	}
	_, _, err = inferJSONL("in.jsonl", strings.NewReader(`{"a":{"b":1}}`+"\n"+`{"a":{"b":"x"}}`), 10)
	if err == nil || err.Error() != `put: in.jsonl: field "a.b": line 2 has a string, line 1 a number; pass --schema` {
		t.Errorf("mixed kinds: %v", err)
	}
	_, _, err = inferJSONL("in.jsonl", strings.NewReader(`{"a":1}`+"\n"+`[1]`), 10)
	if err == nil || !strings.Contains(err.Error(), "in.jsonl: line 2: not a JSON object") {
		t.Errorf("not an object: %v", err)
	}
}

// TestPutReadErrorsNameTheRow: a value that does not fit its column fails
// naming the input, the row and the value.
func TestPutReadErrorsNameTheRow(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	o := readOptions{inferRows: 2, batchRows: 3, csvComma: ',', mem: mem, stdin: strings.NewReader(""), stdinLabel: "stdin"}
	for _, c := range []struct{ name, body, want string }{
		{"a.jsonl", "{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n{\"id\":\"x\"}\n", "a.jsonl: row 4:"},
		{"b.csv", "id\n1\n2\n3\n4\nx\n6\n", "b.csv: a row among rows 4-6:"},
		{"c.csv", "id,n\n1,a\n2\n", "record on line 3: wrong number of fields"},
		{"d.jsonl", "{\"id\":1,\"s\":{\"a\":1}}\n{\"id\":2}\n\n{\"id\":3,\"z\":1,\"s\":{\"a\":2,\"b\":1}}\n",
			`d.jsonl: line 4 has keys "s.b", "z", which the schema has no column for (inferred from the first 2 lines)`},
	} {
		s, err := openSource(context.Background(), writeFile(t, c.name, c.body), o, nil)
		if err != nil { // found while sampling the rows to infer the schema
			if !strings.Contains(err.Error(), c.name+": "+c.want) {
				t.Errorf("%s: %q; want %q in it", c.name, err, c.want)
			}
			continue
		}
		var read int64
		for err == nil {
			var rec arrow.RecordBatch
			if rec, err = s.next(); rec == nil && err == nil {
				t.Fatalf("%s: read to the end without an error", c.name)
			}
			if rec != nil {
				read += rec.NumRows()
				rec.Release()
			}
		}
		s.close()
		msg := readError(s, read, int64(o.batchRows), err).Error()
		t.Log(msg)
		if !strings.Contains(msg, c.want) {
			t.Errorf("%s: %q; want %q in it", c.name, msg, c.want)
		}
	}
}

// TestPutReadersReleaseEverything: each format reads back every row it
// holds, in batches of at most --batch-rows where put chooses them, and
// releases every buffer it allocated.
func TestPutReadersReleaseEverything(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		format inputFormat
		name   string
	}{{formatParquet, "a.parquet"}, {formatArrowFile, "a.arrow"}, {formatArrowStream, "a.arrows"}, {formatCSV, "a.csv"}, {formatJSONL, "a.jsonl"}} {
		path := puttest.Write(t, dir, c.name, puttest.Format(c.format), 0, 1000, 300)
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		o := readOptions{inferRows: 10, batchRows: 256, csvComma: ',', mem: mem}
		s, err := openSource(context.Background(), path, o, nil)
		if err != nil {
			t.Fatal(err)
		}
		var rows int64
		for {
			rec, err := s.next()
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if rec == nil {
				break
			}
			if c.format != formatArrowFile && c.format != formatArrowStream && rec.NumRows() > 256 {
				t.Errorf("%s: a batch of %d rows; want at most 256", c.name, rec.NumRows())
			}
			if err := compareSchemas(c.name, rec.Schema(), "the test", puttest.Schema); err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			rows += rec.NumRows()
			rec.Release()
		}
		s.close()
		if s.format != c.format || rows != 1000 {
			t.Errorf("%s: read as %s, %d rows; want %s, 1000", c.name, s.format, rows, c.format)
		}
		mem.AssertSize(t, 0)
	}
}

// writeFile writes body to a new file name in a temporary directory.
func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
