package metrics

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// scrape fetches the exposition text from m.Handler() over HTTP.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// requireLines fails unless every line is in the exposition text exactly.
func requireLines(t *testing.T, text string, lines ...string) {
	t.Helper()
	have := map[string]bool{}
	for _, l := range strings.Split(text, "\n") {
		have[l] = true
	}
	for _, l := range lines {
		if !have[l] {
			t.Errorf("exposition lacks %q", l)
		}
	}
	if t.Failed() {
		t.Logf("exposition:\n%s", grepFlightsink(text))
	}
}

func grepFlightsink(text string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "flightsink_") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestExposition drives one of each method and checks the exact values
// scraped from Handler().
func TestExposition(t *testing.T) {
	m := New()

	// Two exactly-once streams and one at-least-once stream open; one of
	// each kind ends (one failing), one stays open.
	m.StreamOpened("exactly_once", KindDoPut)
	m.StreamOpened("exactly_once", KindIngest)
	m.StreamOpened("at_least_once", KindDoPut)
	m.StreamClosed("exactly_once", KindDoPut, OutcomeOK)
	m.StreamClosed("at_least_once", KindDoPut, "bad_row")
	m.StreamRejected("", KindDoPut, "bad_descriptor")

	m.BatchIn(3, 120)
	m.BatchIn(1000, 65536)
	m.RecordsProduced("orders", 3, 150)
	m.RecordsProduced("orders", 1000, 50000)
	m.RecordsProduced("clicks", 7, 70)

	m.TxnCommitted(3 * time.Millisecond)   // bucket 0.005
	m.TxnCommitted(200 * time.Millisecond) // bucket 0.25
	m.TxnAborted()
	m.CheckpointDurable("exactly_once", 3*time.Millisecond)
	m.CheckpointDurable("at_least_once", 20*time.Second) // beyond the last bucket

	m.ProduceError("NOT_ENOUGH_REPLICAS")
	m.ProduceError("timeout")
	m.ProduceError("timeout")

	m.BufferedBytes(4096)
	m.BufferedBytes(-1024)

	text := scrape(t, m)
	requireLines(t, text,
		"# TYPE flightsink_streams_open gauge",
		`flightsink_streams_open{delivery="exactly_once"} 1`,
		`flightsink_streams_open{delivery="at_least_once"} 0`,
		"# TYPE flightsink_streams_total counter",
		`flightsink_streams_total{delivery="exactly_once",kind="doput",outcome="ok"} 1`,
		`flightsink_streams_total{delivery="at_least_once",kind="doput",outcome="bad_row"} 1`,
		`flightsink_streams_total{delivery="unknown",kind="doput",outcome="bad_descriptor"} 1`,
		"flightsink_rows_received_total 1003",
		"flightsink_bytes_received_total 65656",
		`flightsink_records_produced_total{topic="orders"} 1003`,
		`flightsink_records_produced_total{topic="clicks"} 7`,
		`flightsink_record_bytes_produced_total{topic="orders"} 50150`,
		`flightsink_record_bytes_produced_total{topic="clicks"} 70`,
		`flightsink_transactions_total{outcome="committed"} 2`,
		`flightsink_transactions_total{outcome="aborted"} 1`,
		"# TYPE flightsink_checkpoint_commit_seconds histogram",
		`flightsink_checkpoint_commit_seconds_bucket{le="0.001"} 0`,
		`flightsink_checkpoint_commit_seconds_bucket{le="0.005"} 1`,
		`flightsink_checkpoint_commit_seconds_bucket{le="0.1"} 1`,
		`flightsink_checkpoint_commit_seconds_bucket{le="0.25"} 2`,
		`flightsink_checkpoint_commit_seconds_bucket{le="10"} 2`,
		`flightsink_checkpoint_commit_seconds_bucket{le="+Inf"} 2`,
		"flightsink_checkpoint_commit_seconds_sum 0.203",
		"flightsink_checkpoint_commit_seconds_count 2",
		`flightsink_checkpoint_seconds_bucket{delivery="exactly_once",le="0.005"} 1`,
		`flightsink_checkpoint_seconds_count{delivery="exactly_once"} 1`,
		`flightsink_checkpoint_seconds_bucket{delivery="at_least_once",le="10"} 0`,
		`flightsink_checkpoint_seconds_bucket{delivery="at_least_once",le="+Inf"} 1`,
		`flightsink_checkpoint_seconds_sum{delivery="at_least_once"} 20`,
		`flightsink_produce_errors_total{code="NOT_ENOUGH_REPLICAS"} 1`,
		`flightsink_produce_errors_total{code="timeout"} 2`,
		"# TYPE flightsink_producer_buffered_bytes gauge",
		"flightsink_producer_buffered_bytes 3072",
	)
	// The Go and process collectors are registered.
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_resident_memory_bytes"} {
		if !strings.Contains(text, "\n"+name+" ") {
			t.Errorf("exposition lacks %s", name)
		}
	}

	// The same values through testutil, against the collectors directly.
	if got := testutil.ToFloat64(m.streamsOpen.WithLabelValues("exactly_once")); got != 1 {
		t.Errorf("streams_open{exactly_once} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.bufferedBytes); got != 3072 {
		t.Errorf("producer_buffered_bytes = %v, want 3072", got)
	}
	if n := testutil.CollectAndCount(m.streamsTotal); n != 3 {
		t.Errorf("streams_total has %d series, want 3", n)
	}
}

// TestTransactionsStartAtZero: both transaction outcomes and both delivery
// gauges exist before anything happened, so rate() and dashboards see 0.
func TestTransactionsStartAtZero(t *testing.T) {
	text := scrape(t, New())
	requireLines(t, text,
		`flightsink_transactions_total{outcome="committed"} 0`,
		`flightsink_transactions_total{outcome="aborted"} 0`,
		`flightsink_streams_open{delivery="exactly_once"} 0`,
		`flightsink_streams_open{delivery="at_least_once"} 0`,
		"flightsink_rows_received_total 0",
		"flightsink_producer_buffered_bytes 0",
	)
}

// TestAuthFailures: flightsink_auth_failures_total has every reason from
// the start (0) and counts each refused authentication under its reason.
func TestAuthFailures(t *testing.T) {
	m := New()
	var zero []string
	for _, r := range AuthReasons {
		zero = append(zero, `flightsink_auth_failures_total{reason="`+r+`"} 0`)
	}
	requireLines(t, scrape(t, m), zero...)
	m.AuthFailure(AuthBadPassword)
	m.AuthFailure(AuthBadPassword)
	m.AuthFailure(AuthRateLimited)
	requireLines(t, scrape(t, m),
		`flightsink_auth_failures_total{reason="bad_password"} 2`,
		`flightsink_auth_failures_total{reason="rate_limited"} 1`,
		`flightsink_auth_failures_total{reason="unknown_user"} 0`,
	)
}

// TestIndependentRegistries: two Metrics never share a value (one per
// server; tests run several in one process).
func TestIndependentRegistries(t *testing.T) {
	a, b := New(), New()
	a.BatchIn(5, 50)
	requireLines(t, scrape(t, a), "flightsink_rows_received_total 5")
	requireLines(t, scrape(t, b), "flightsink_rows_received_total 0")
}

// TestNilIsNoOp: a nil *Metrics accepts every call.
func TestNilIsNoOp(t *testing.T) {
	var m *Metrics
	m.StreamOpened("exactly_once", KindDoPut)
	m.StreamClosed("exactly_once", KindDoPut, OutcomeOK)
	m.StreamRejected("", KindDoPut, "bad_descriptor")
	m.BatchIn(1, 1)
	m.RecordsProduced("t", 1, 1)
	m.TxnCommitted(time.Millisecond)
	m.TxnAborted()
	m.CheckpointDurable("at_least_once", time.Millisecond)
	m.ProduceError("timeout")
	m.BufferedBytes(1)
	m.AuthFailure(AuthBadPassword)
	m.ReplicaClaimed("r", true)
	if m.Registry() != nil {
		t.Fatal("nil Metrics has a registry")
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("nil Metrics handler: %d, want 404", rec.Code)
	}
}

// TestTopicCardinalityBound: topics beyond MaxTopicLabels share _other.
func TestTopicCardinalityBound(t *testing.T) {
	m := New()
	for i := 0; i < MaxTopicLabels+5; i++ {
		m.RecordsProduced(fmt.Sprintf("t%d", i), 1, 10)
	}
	m.RecordsProduced("t0", 1, 10) // a known topic keeps its own series
	if n := testutil.CollectAndCount(m.recordsProduced); n != MaxTopicLabels+1 {
		t.Fatalf("records_produced_total has %d series, want %d", n, MaxTopicLabels+1)
	}
	requireLines(t, scrape(t, m),
		`flightsink_records_produced_total{topic="_other"} 5`,
		`flightsink_record_bytes_produced_total{topic="_other"} 50`,
		`flightsink_records_produced_total{topic="t0"} 2`,
	)
}

// TestConcurrentUse: every method from many goroutines at once (run with
// -race) gives exact totals.
func TestConcurrentUse(t *testing.T) {
	m := New()
	const goroutines, iterations = 16, 500
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			topic := fmt.Sprintf("topic-%d", g%4)
			for i := 0; i < iterations; i++ {
				m.StreamOpened("exactly_once", KindDoPut)
				m.BatchIn(10, 100)
				m.RecordsProduced(topic, 10, 100)
				m.BufferedBytes(100)
				m.BufferedBytes(-100)
				m.TxnCommitted(time.Millisecond)
				m.CheckpointDurable("exactly_once", time.Millisecond)
				m.StreamClosed("exactly_once", KindDoPut, OutcomeOK)
			}
		}(g)
	}
	wg.Wait()
	const n = goroutines * iterations
	requireLines(t, scrape(t, m),
		`flightsink_streams_open{delivery="exactly_once"} 0`,
		fmt.Sprintf(`flightsink_streams_total{delivery="exactly_once",kind="doput",outcome="ok"} %d`, n),
		fmt.Sprintf("flightsink_rows_received_total %d", n*10),
		fmt.Sprintf(`flightsink_records_produced_total{topic="topic-0"} %d`, n*10/4),
		"flightsink_producer_buffered_bytes 0",
		fmt.Sprintf(`flightsink_transactions_total{outcome="committed"} %d`, n),
		fmt.Sprintf("flightsink_checkpoint_commit_seconds_count %d", n),
	)
}

// BenchmarkBatch is the per-batch cost of the calls a stream makes.
func BenchmarkBatch(b *testing.B) {
	m := New()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.BatchIn(1000, 65536)
			m.RecordsProduced("orders", 1000, 50000)
			m.BufferedBytes(50000)
		}
	})
}

// TestReplicaClaimed: the claimed replica name is a label of a gauge that
// is 1 while held and 0 once lost.
func TestReplicaClaimed(t *testing.T) {
	m := New()
	m.ReplicaClaimed("compose-1", true)
	requireLines(t, scrape(t, m), `flightsink_replica_claimed{replica="compose-1"} 1`)
	m.ReplicaClaimed("compose-1", false)
	requireLines(t, scrape(t, m), `flightsink_replica_claimed{replica="compose-1"} 0`)
}
