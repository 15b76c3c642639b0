package faults

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/flightsink/flightsink/internal/kafkatest"
)

// TestInternalTopicsReplicated: on the three-node cluster, the topics
// flightsink keeps its own state in (writer progress, replica claims) and
// Kafka's transaction and offset logs have three replicas and
// min.insync.replicas 2, so an acknowledged checkpoint survives the loss
// of any one broker.
func TestInternalTopicsReplicated(t *testing.T) {
	c := theCluster
	startServer(t, c.brokers, fmt.Sprintf("internal%d", time.Now().UnixNano()%1_000_000))
	adm := c.admin(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// __consumer_offsets exists once a group coordinator was asked for
	if r := adm.FindGroupCoordinators(ctx, "faults-probe"); r.Error() != nil {
		t.Logf("finding a group coordinator (creates __consumer_offsets): %v", r.Error())
	}
	topics := []string{"flightsink-writers", "flightsink-replicas", "__transaction_state", "__consumer_offsets"}
	var md map[string]int
	for attempt := 0; ; attempt++ {
		details, err := adm.ListTopics(ctx, topics...)
		if err == nil && fullISR(details, topics, c.nodes) == nil {
			md = map[string]int{}
			for _, td := range details {
				for _, p := range td.Partitions {
					md[td.Topic] = max(md[td.Topic], len(p.Replicas))
					if len(p.Replicas) != c.nodes {
						t.Errorf("%s[%d] has replicas %v, want %d", td.Topic, p.Partition, p.Replicas, c.nodes)
					}
				}
			}
			break
		}
		if attempt == 100 {
			t.Fatalf("internal topics %v not all there with every replica in sync: %v %v", topics, err, fullISR(details, topics, c.nodes))
		}
		time.Sleep(200 * time.Millisecond)
	}
	cfgs, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range cfgs {
		value := "(not listed)"
		for _, cfg := range rc.Configs {
			if cfg.Key == "min.insync.replicas" && cfg.Value != nil {
				value = *cfg.Value
			}
		}
		if rc.Err != nil || value != "2" {
			t.Errorf("%s: min.insync.replicas %s (%v), want 2", rc.Name, value, rc.Err)
		}
	}
	t.Logf("replicas per topic: %v; min.insync.replicas 2 each", md)
}

// TestTwoOfThreeDown: with one broker of three killed, flightsink stays
// ready and the writer keeps getting acks; with a second one killed, it
// turns not ready, streams fail with a retryable reason and no checkpoint
// is acknowledged (nothing could be made durable on two brokers); once
// both are back the writer resumes and finishes, and nothing acknowledged
// was lost.
func TestTwoOfThreeDown(t *testing.T) {
	c := theCluster
	topic := kafkatest.TopicName(t)
	c.createTopic(t, topic, 2)
	prefix := fmt.Sprintf("quorum%d", time.Now().UnixNano()%1_000_000)
	srv := startServer(t, c.brokers, prefix)
	writerID := "quorum-" + topic
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	w := newWriter(t, srv.addr, topic, writerID)
	stop, result := make(chan struct{}), make(chan error, 1)
	go func() { result <- w.run(ctx, stop) }()
	waitAck(t, w, time.Time{}, result)
	waitReady(t, srv, true, "all three brokers up")

	first := c.leader(t, topic, 0)
	second := first%c.nodes + 1
	c.node(t, "kill", first)
	killed := time.Now()
	at := waitAck(t, w, killed, result)
	t.Logf("node %d (leader of %s[0]) killed: next ack after %v", first, topic, at.Sub(killed).Round(time.Millisecond))
	waitReady(t, srv, true, "one broker of three down")
	// and it stays ready: every probe for longer than the replica claim's
	// TTL (heartbeats had to reach the two that are left)
	var notReady []string
	for end := time.Now().Add(claimTTL + 2*time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if ok, body := srv.ready(); !ok {
			notReady = append(notReady, body)
		}
	}
	if len(notReady) > 0 {
		t.Fatalf("with one broker of three down, /readyz said not ready %d times: %q", len(notReady), notReady[0])
	}

	c.node(t, "kill", second)
	killed = time.Now()
	waitReady(t, srv, false, "two brokers of three down")
	fails := waitFailure(t, w, killed, result)
	ackedThen, _ := w.ackedRows()
	time.Sleep(2 * produceTimeout) // streams keep trying: none may be acknowledged
	if now, at := w.ackedRows(); now != ackedThen {
		t.Fatalf("with two brokers of three down, an ack raised the acknowledged rows from %d to %d at %v", ackedThen, now, at.Format(time.TimeOnly))
	}
	t.Logf("two brokers down: not ready, streams failed retryably (first: %s), no ack beyond %d rows", fails, ackedThen)

	c.node(t, "start", first)
	c.node(t, "start", second)
	back := time.Now()
	at = waitAck(t, w, back, result)
	waitReady(t, srv, true, "every broker back")
	t.Logf("both brokers back: first ack after %v", at.Sub(back).Round(time.Millisecond))
	close(stop)
	if err := <-result; err != nil {
		t.Fatalf("the writer: %v", err)
	}
	w.verify(t, c.brokers)
}

// waitReady polls /readyz until it says want; three minutes without fails.
func waitReady(t *testing.T, srv *server, want bool, when string) {
	t.Helper()
	start := time.Now()
	for {
		ok, body := srv.ready()
		if ok == want {
			t.Logf("%s: /readyz %v after %v (%s)", when, map[bool]string{true: "ready", false: "not ready"}[ok],
				time.Since(start).Round(time.Millisecond), body)
			return
		}
		if time.Since(start) > 3*time.Minute {
			t.Fatalf("%s: /readyz still says %q after 3 minutes", when, body)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitFailure waits for the writer's first failed attempt after since (a
// retryable one: run ends on any other) and returns its error.
func waitFailure(t *testing.T, w *writer, since time.Time, result <-chan error) string {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		w.mu.Lock()
		for _, f := range w.failures {
			if f.at.After(since) {
				w.mu.Unlock()
				return f.err
			}
		}
		w.mu.Unlock()
		select {
		case err := <-result:
			t.Fatalf("the writer ended: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no stream failed within 3 minutes of the second broker's loss")
		}
	}
}
