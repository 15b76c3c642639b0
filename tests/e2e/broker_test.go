package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	client "github.com/flightsink/flightsink/clients/go/fsclient"
	"github.com/flightsink/flightsink/internal/kafkatest"
)

// privateBroker starts a broker of this test's own with scripts/kafka.sh,
// so stopping it never takes the shared broker away from other tests. It
// returns the brokers and functions to stop and restart it (same port,
// same data).
func privateBroker(t *testing.T) (brokers []string, stop, start func()) {
	t.Helper()
	script := os.Getenv("FLIGHTSINK_KAFKA_SCRIPT")
	if script == "" {
		if os.Getenv("FLIGHTSINK_TEST_REQUIRE_TOOLS") == "1" {
			t.Fatal("FLIGHTSINK_KAFKA_SCRIPT is not set; make test sets it")
		}
		t.Skip("needs FLIGHTSINK_KAFKA_SCRIPT (scripts/kafka.sh) to run a private broker; make test sets it")
	}
	name := strings.NewReplacer("/", "_").Replace(t.Name())
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("bash", append([]string{script}, args...)...).Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("kafka.sh %v: %v\n%s", args, err, ee.Stderr)
			}
			t.Fatalf("kafka.sh %v: %v", args, err)
		}
		return string(out)
	}
	out := run("up", name)
	t.Cleanup(func() { _, _ = exec.Command("bash", script, "down", name).Output() })
	lines := strings.Split(strings.TrimSpace(out), "\n")
	addr := strings.TrimPrefix(lines[len(lines)-1], "KAFKA_BROKERS=")
	return []string{addr}, func() { run("stop", name) }, func() { run("start", name) }
}

// TestBrokerRestartMidStream: the broker stops while a named writer has an
// open transaction. The stream fails with Unavailable within
// kafka.produce_timeout instead of hanging; after the broker is back, the
// resumed writer finishes with exactly-once results.
func TestBrokerRestartMidStream(t *testing.T) {
	t.Parallel() // a broker of its own: see the package doc
	brokers, stopBroker, startBroker := privateBroker(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, brokers, topic, 2, nil)
	const produceTimeout = 5 * time.Second
	srv := startServer(t, serverConfig{brokers: brokers, replica: "restart", prefix: uniquePrefix(t),
		env: []string{"FLIGHTSINK_KAFKA_PRODUCE_TIMEOUT=" + produceTimeout.String()}})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	writer := "restart-" + topic
	desc := client.Descriptor{Topic: topic, KeyField: "key", Delivery: "exactly_once", WriterID: writer}

	c, err := client.Dial(srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w, err := c.Open(ctx, desc, rowSchema)
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, 0, 1000)
	if _, err := w.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	write(t, w, 1000, 1000)
	stopBroker()
	began := time.Now()
	write(t, w, 2000, 1000)
	_, err = w.Checkpoint(ctx)
	var fe *client.Error
	if !errors.As(err, &fe) || !fe.Retryable() {
		t.Fatalf("checkpoint with the broker down: %v; want a retryable Unavailable", err)
	}
	t.Logf("with the broker down the stream failed after %v (kafka.produce_timeout %v): %v",
		time.Since(began).Round(time.Millisecond), produceTimeout, fe)

	startBroker()
	var done client.Done
	for attempt := 0; ; attempt++ {
		done, err = upload(ctx, srv.addr, topic, writer, 3000, 1000, 1000, nil)
		if err == nil || attempt == 20 || (errors.As(err, &fe) && !fe.Retryable()) {
			break
		}
		t.Logf("resume attempt %d: %v", attempt, err)
		time.Sleep(500 * time.Millisecond) // back off while the broker finishes starting
	}
	if err != nil {
		t.Fatal(err)
	}
	if done.CommittedRows != 3000 {
		t.Fatalf("done %+v, want 3000 committed rows", done)
	}
	checkExactlyOnce(t, brokers, topic, 3000)
}
