package e2e

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	client "github.com/flightsink/flightsink/clients/go/fsclient"
	"github.com/flightsink/flightsink/internal/kafkatest"
)

func httpGet(url string) (int, string) {
	resp, err := http.Get(url) //nolint:gosec // a test URL on loopback
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMetricsAfterKnownStream: after one exactly-once stream of 30 rows
// with two checkpoints and a committed tail, /metrics says exactly that.
func TestMetricsAfterKnownStream(t *testing.T) {
	brokers := testBrokers(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, brokers, topic, 1, nil)
	maddr := freeAddr(t)
	srv := startServer(t, serverConfig{brokers: brokers, replica: "metrics", prefix: uniquePrefix(t),
		env: []string{"FLIGHTSINK_METRICS_LISTEN=" + maddr}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Dial(srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w, err := c.Open(ctx, client.Descriptor{Topic: topic, Delivery: "exactly_once"}, rowSchema)
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < 3; i++ {
		write(t, w, i*10, 10)
		if i < 2 {
			if _, err := w.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	code, body := httpGet("http://" + maddr + "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	for _, want := range []string{
		`flightsink_rows_received_total 30`,
		`flightsink_records_produced_total{topic="` + topic + `"} 30`,
		`flightsink_streams_total{delivery="exactly_once",kind="doput",outcome="ok"} 1`,
		`flightsink_transactions_total{outcome="committed"} 3`,
		`flightsink_checkpoint_seconds_count{delivery="exactly_once"} 2`,
		`flightsink_streams_open{delivery="exactly_once"} 0`,
		`flightsink_producer_buffered_bytes 0`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", grepLines(body, "flightsink_"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestReadinessFollowsKafka: /readyz turns 503 when the broker stops and
// 200 again once it is back; /healthz stays 200 throughout.
func TestReadinessFollowsKafka(t *testing.T) {
	t.Parallel() // a broker of its own: see the package doc
	brokers, stopBroker, startBroker := privateBroker(t)
	maddr := freeAddr(t)
	srv := startServer(t, serverConfig{brokers: brokers, replica: "ready", prefix: uniquePrefix(t),
		env: []string{"FLIGHTSINK_METRICS_LISTEN=" + maddr, "FLIGHTSINK_METRICS_CHECK_INTERVAL=300ms",
			"FLIGHTSINK_KAFKA_PRODUCE_TIMEOUT=2s"}})
	_ = srv
	ready := func(want int) {
		t.Helper()
		waitUntil(t, "/readyz to answer "+http.StatusText(want), func() bool {
			code, _ := httpGet("http://" + maddr + "/readyz")
			return code == want
		})
	}
	ready(200)
	stopBroker()
	ready(503)
	if code, _ := httpGet("http://" + maddr + "/healthz"); code != 200 {
		t.Fatalf("/healthz answered %d while Kafka is down; the process is alive", code)
	}
	startBroker()
	ready(200)
}
