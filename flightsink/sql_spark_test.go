package flightsink_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flightsink/flightsink/flightsink"
	"github.com/flightsink/flightsink/internal/kafkatest"
	"github.com/flightsink/flightsink/kafka"
)

// sparkNewest is the newest pyspark on PyPI when this was written; the
// README's Spark notes are checked against it.
const sparkNewest = "4.3.0"

// sparkPython returns the python of a venv with pyspark==version, made
// once under the cache (FLIGHTSINK_CACHE_DIR, default <repo>/.cache) in
// spark/venv-<version> (about 530 MB each).
func sparkPython(t *testing.T, version string) string {
	t.Helper()
	cache := os.Getenv("FLIGHTSINK_CACHE_DIR")
	if cache == "" {
		cache = filepath.Join("..", ".cache")
	}
	dir, err := filepath.Abs(filepath.Join(cache, "spark", "venv-"+version))
	if err != nil {
		t.Fatal(err)
	}
	py := filepath.Join(dir, "bin", "python")
	if out, err := exec.Command(py, "-c", "import pyspark; print(pyspark.__version__)").Output(); err == nil && strings.TrimSpace(string(out)) == version {
		return py
	}
	if _, err := exec.LookPath("python3"); err != nil {
		if requireTools() {
			t.Fatal("python3 is not installed (FLIGHTSINK_TEST_REQUIRE_TOOLS=1)")
		}
		t.Skip("python3 is not installed")
	}
	t.Logf("installing pyspark==%s into %s", version, dir)
	for _, args := range [][]string{{"python3", "-m", "venv", dir}, {py, "-m", "pip", "install", "-q", "pyspark==" + version}} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return py
}

// runSpark runs testdata/spark/spark_write.py and returns its KEY=VALUE lines.
func runSpark(t *testing.T, py string, args ...string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, append([]string{filepath.Join("testdata", "spark", "spark_write.py")}, args...)...)
	cmd.Env = append(os.Environ(), "PYSPARK_PYTHON="+py, "SPARK_LOCAL_IP=127.0.0.1")
	out, err := cmd.CombinedOutput()
	t.Logf("spark:\n%s", out)
	if err != nil {
		t.Fatalf("spark: %v", err)
	}
	kv := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		for _, k := range []string{"APPEND", "OVERWRITE", "CREATE"} {
			if i := strings.Index(line, k+"="); i >= 0 {
				kv[k] = strings.TrimSpace(line[i+len(k)+1:])
			}
		}
	}
	return kv
}

// sparkColumns is the table Spark's DataFrame writes (Spark's default
// dialect's type names, the space before each comma as Spark sends them).
const sparkColumns = `("k" TEXT , "id" BIGINT NOT NULL, "b" BYTE , "d" DOUBLE PRECISION , "flag" BIT(1) , "dec" DECIMAL(10,2) , "day" DATE , "ts" TIMESTAMP )`

// checkSparkRows checks that table holds every row of spark_write.py
// exactly once, keyed and typed right.
func checkSparkRows(t *testing.T, env *testEnv, table string, rows int) {
	t.Helper()
	recs := kafkatest.ReadCommitted(t, env.brokers, table)
	if len(recs) != rows {
		t.Fatalf("%s: %d committed records, want %d", table, len(recs), rows)
	}
	base := time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.UTC)
	seen := map[int]bool{}
	for _, r := range recs {
		var v struct {
			K    string  `json:"k"`
			ID   int     `json:"id"`
			D    float64 `json:"d"`
			Flag bool    `json:"flag"`
			TS   string  `json:"ts"`
			Day  string  `json:"day"`
		}
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatalf("value %s: %v", r.Value, err)
		}
		ts, err := time.Parse(time.RFC3339Nano, v.TS)
		if err != nil || string(r.Key) != v.K || v.K != "key-"+strconv.Itoa(v.ID) || v.D != float64(v.ID)/2 || v.Flag != (v.ID%2 == 0) ||
			!ts.Equal(base.Add(time.Duration(v.ID)*time.Second)) || !strings.HasPrefix(v.Day, "2026-01-") {
			t.Fatalf("record key %q value %s (%v)", r.Key, r.Value, err)
		}
		seen[v.ID] = true
	}
	if len(seen) != rows {
		t.Fatalf("%d distinct rows, want %d", len(seen), rows)
	}
}

// TestSparkJDBCWrites: the newest pyspark's df.write.jdbc into a declared
// table lands every row exactly once with the right types and timestamps
// and reports success; mode="overwrite" fails with the append-only
// message and changes nothing. The server has one stream slot for Spark's
// two tasks: one waits for the other (flight.stream_queue_timeout) instead
// of failing the job.
func TestSparkJDBCWrites(t *testing.T) {
	t.Parallel() // a JVM (and a venv) of its own; see mavenMu
	jar := jdbcDriver(t)
	py := sparkPython(t, sparkNewest)
	env := startServer(t, createTopics, func(f *flightsink.Config, _ *kafka.Config) { f.MaxStreams = 1 })
	table := kafkatest.TopicName(t)
	cl := sqlClient(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := cl.ExecuteUpdate(ctx, `CREATE TABLE "`+table+`" `+sparkColumns+` WITH (key_field = 'k')`); err != nil {
		t.Fatal(err)
	}
	const rows = 3000
	out := runSpark(t, py, "jdbc:arrow-flight-sql://"+env.addr+"?useEncryption=false", jar, table, "-", strconv.Itoa(rows))
	if out["APPEND"] != "ok" {
		t.Fatalf("append: %q", out["APPEND"])
	}
	if !strings.HasPrefix(out["OVERWRITE"], "refused") || !strings.Contains(out["OVERWRITE"], "append-only") {
		t.Errorf("overwrite: %q", out["OVERWRITE"])
	}
	checkSparkRows(t, env, table, rows)
	t.Logf("streams that waited for a slot: %d", strings.Count(env.logs(), "waiting for a stream slot"))
}

// TestSparkCreatesTable: pyspark 4.1.0 writing to a table that does not
// exist sends CREATE TABLE in its dialect with createTableOptions
// (WITH (key_field = 'k')), then inserts: every row lands once. (4.1.1 and
// later re-throw the failed table-exists probe: the README says so.)
func TestSparkCreatesTable(t *testing.T) {
	t.Parallel() // a JVM (and a venv) of its own; see mavenMu
	jar := jdbcDriver(t)
	py := sparkPython(t, "4.1.0")
	env := startServer(t, createTopics)
	declared, created := kafkatest.TopicName(t), kafkatest.TopicName(t)+"-created"
	cl := sqlClient(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := cl.ExecuteUpdate(ctx, `CREATE TABLE "`+declared+`" `+sparkColumns+` WITH (key_field = 'k')`); err != nil {
		t.Fatal(err)
	}
	const rows = 1000
	out := runSpark(t, py, "jdbc:arrow-flight-sql://"+env.addr+"?useEncryption=false", jar, declared, created, strconv.Itoa(rows))
	if out["APPEND"] != "ok" || out["CREATE"] != "ok" {
		t.Fatalf("append %q, create %q", out["APPEND"], out["CREATE"])
	}
	checkSparkRows(t, env, declared, rows)
	checkSparkRows(t, env, created, rows)
}
