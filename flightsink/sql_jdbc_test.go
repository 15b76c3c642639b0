package flightsink_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flightsink/flightsink/internal/kafkatest"
)

// jdbcDriverVersion is the Arrow Flight SQL JDBC driver the tests run
// (org.apache.arrow:flight-sql-jdbc-driver from Maven Central).
const jdbcDriverVersion = "18.3.0"

// mavenMu keeps the Maven runs of the tests that run in parallel (Java and
// Spark, each mostly waiting on a JVM of its own) one at a time: two fetching
// the same jar at once would each write it.
var mavenMu sync.Mutex

// jdbcDriver returns the driver jar, fetched once with Maven into the
// cache (FLIGHTSINK_CACHE_DIR, default <repo>/.cache) under jdbc/.
func jdbcDriver(t *testing.T) string {
	t.Helper()
	mavenMu.Lock()
	defer mavenMu.Unlock()
	for _, tool := range []string{"java", "mvn"} {
		if _, err := exec.LookPath(tool); err != nil {
			if requireTools() {
				t.Fatalf("%s is not installed (FLIGHTSINK_TEST_REQUIRE_TOOLS=1)", tool)
			}
			t.Skipf("%s is not installed", tool)
		}
	}
	cache := os.Getenv("FLIGHTSINK_CACHE_DIR")
	if cache == "" {
		cache = filepath.Join("..", ".cache")
	}
	dir, err := filepath.Abs(filepath.Join(cache, "jdbc"))
	if err != nil {
		t.Fatal(err)
	}
	jar := filepath.Join(dir, "flight-sql-jdbc-driver-"+jdbcDriverVersion+".jar")
	if _, err := os.Stat(jar); err == nil {
		return jar
	}
	out, err := exec.Command("mvn", "-q", "-B", "dependency:copy",
		"-Dartifact=org.apache.arrow:flight-sql-jdbc-driver:"+jdbcDriverVersion, "-DoutputDirectory="+dir).CombinedOutput()
	if err != nil {
		t.Fatalf("fetching the JDBC driver with Maven: %v\n%s", err, out)
	}
	return jar
}

// runJava runs testdata/<main>.java with the driver on the classpath,
// in UTC as the README tells JDBC users, and returns its KEY=VALUE lines.
func runJava(t *testing.T, jar, main string, args ...string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "java", append([]string{"--add-opens=java.base/java.nio=ALL-UNNAMED", "-Duser.timezone=UTC",
		"-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp", jar, filepath.Join("testdata", main+".java")}, args...)...)
	out, err := cmd.CombinedOutput()
	t.Logf("java %s:\n%s", main, out)
	if err != nil {
		t.Fatalf("java %s: %v", main, err)
	}
	kv := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && k == strings.ToUpper(k) && !strings.ContainsAny(k, " .") {
			kv[k] = v
		}
	}
	return kv
}

// TestJDBCDriverWrites: with Arrow's Flight SQL JDBC driver, CREATE TABLE,
// getTableTypes and getColumns, executeBatch of 10,000 rows with the key
// from a connection property (exactly 10,000 committed records with the
// right keys and JSON values), a batch failing mid-way leaves nothing, a
// schema probe, DROP TABLE refused.
func TestJDBCDriverWrites(t *testing.T) {
	t.Parallel() // a JVM of its own; see mavenMu
	jar := jdbcDriver(t)
	env := startServer(t, createTopics)
	table := kafkatest.TopicName(t)
	const rows = 10_000
	// catalog: the driver sends SetSessionOptions, which must be answered.
	url := "jdbc:arrow-flight-sql://" + env.addr + "?useEncryption=false&flightsink-key-field=k&catalog=kafka"
	out := runJava(t, jar, "jdbc/JdbcWrite", url, table, strconv.Itoa(rows))

	if out["TABLE_TYPES"] != "TABLE,TOPIC" {
		t.Errorf("getTableTypes: %q", out["TABLE_TYPES"])
	}
	if !strings.HasPrefix(out["COLUMNS"], "k:") || !strings.Contains(out["COLUMNS"], ",id:4,") || strings.Count(out["COLUMNS"], ",") != 3 {
		t.Errorf("getColumns: %q", out["COLUMNS"])
	}
	if out["BATCH_COUNT"] != strconv.Itoa(rows) {
		t.Errorf("executeBatch counted %q rows, want %d", out["BATCH_COUNT"], rows)
	}
	if !strings.HasPrefix(out["BAD_BATCH"], "refused") || !strings.Contains(out["BAD_BATCH"], "NOT NULL") {
		t.Errorf("a batch with a NULL in a NOT NULL column: %q", out["BAD_BATCH"])
	}
	// TIMESTAMP is 93 (Types.TIMESTAMP), not 2014 (TIMESTAMP_WITH_TIMEZONE).
	// (Driver 18.3's metadata of a prepared query lists its columns twice,
	// whatever the server sends; the first are the table's.)
	if !strings.HasPrefix(out["PROBE"], "k:12,id:4,amount:8,ts:93") || !strings.HasSuffix(out["PROBE"], "rows=none") {
		t.Errorf("probe: %q", out["PROBE"])
	}
	if !strings.HasPrefix(out["DROP"], "refused") || !strings.Contains(out["DROP"], "append-only") {
		t.Errorf("DROP TABLE: %q", out["DROP"])
	}

	recs := kafkatest.ReadCommitted(t, env.brokers, table)
	if len(recs) != rows {
		t.Fatalf("%d committed records, want %d", len(recs), rows)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		var v struct {
			K      string  `json:"k"`
			ID     int     `json:"id"`
			Amount float64 `json:"amount"`
			TS     string  `json:"ts"`
		}
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatalf("value %s: %v", r.Value, err)
		}
		if string(r.Key) != v.K || v.K != "key-"+strconv.Itoa(v.ID) || v.Amount != float64(v.ID)*0.5 ||
			!strings.HasPrefix(v.TS, "2026-01-02T03:04:05.678") {
			t.Fatalf("record key %q value %s", r.Key, r.Value)
		}
		seen[v.K] = true
	}
	if len(seen) != rows {
		t.Fatalf("%d distinct keys, want %d", len(seen), rows)
	}
}

// adbcClasspath resolves Java ADBC's Flight SQL driver and its
// dependencies (testdata/adbc/pom.xml) with Maven.
func adbcClasspath(t *testing.T) string {
	t.Helper()
	jdbcDriver(t) // the same tools
	mavenMu.Lock()
	defer mavenMu.Unlock()
	out := filepath.Join(t.TempDir(), "cp.txt")
	cmd := exec.Command("mvn", "-q", "-B", "-f", filepath.Join("testdata", "adbc", "pom.xml"), "dependency:build-classpath", "-Dmdep.outputFile="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("resolving Java ADBC with Maven: %v\n%s", err, b)
	}
	cp, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(cp))
}

// TestJavaADBCWrites: Java ADBC's bulk ingest (0.20.0) appends to a
// declared table (binding int64 ids to an INTEGER column: cast by the
// server) and creates a new table with int and string columns (it sends
// CREATE TABLE, then a prepared INSERT); every row lands once.
func TestJavaADBCWrites(t *testing.T) {
	t.Parallel() // a JVM of its own; see mavenMu
	cp := adbcClasspath(t)
	env := startServer(t, createTopics)
	declared, created := kafkatest.TopicName(t), kafkatest.TopicName(t)+"-new"
	cl := sqlClient(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := cl.ExecuteUpdate(ctx, `CREATE TABLE "`+declared+`" (k VARCHAR(32), id INTEGER NOT NULL) WITH (key_field = 'k')`); err != nil {
		t.Fatal(err)
	}
	const rows = 500
	out := runJava(t, cp, "adbc/AdbcWrite", "grpc+tcp://"+env.addr, declared, created, strconv.Itoa(rows))
	if out["APPEND_COUNT"] != strconv.Itoa(rows) || out["CREATE_COUNT"] != strconv.Itoa(rows) {
		t.Errorf("counts: append %q, create %q; want %d", out["APPEND_COUNT"], out["CREATE_COUNT"], rows)
	}
	recs := kafkatest.ReadCommitted(t, env.brokers, declared)
	if len(recs) != rows {
		t.Fatalf("%s: %d records, want %d", declared, len(recs), rows)
	}
	for _, r := range recs {
		var v struct {
			K  string `json:"k"`
			ID int    `json:"id"`
		}
		if err := json.Unmarshal(r.Value, &v); err != nil || string(r.Key) != v.K || v.K != "a-"+strconv.Itoa(v.ID) {
			t.Fatalf("record %q %s: %v", r.Key, r.Value, err)
		}
	}
	recs = kafkatest.ReadCommitted(t, env.brokers, created)
	if len(recs) != rows {
		t.Fatalf("%s: %d records, want %d", created, len(recs), rows)
	}
	var v map[string]any
	if err := json.Unmarshal(recs[0].Value, &v); err != nil || v["s"] != "s-"+strconv.Itoa(int(v["n"].(float64))) {
		t.Fatalf("created table record %s: %v", recs[0].Value, err)
	}
}
