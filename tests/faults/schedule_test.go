package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flightsink/flightsink/internal/kafkatest"
)

// schedule is the nemesis schedule of this run: its seed, the faults in
// order (short: each nemesis once; long: random ones until the duration is
// used up) and how long each lasts.
type schedule struct {
	seed     uint64
	long     time.Duration // 0: the short schedule
	rng      *rand.Rand
	started  time.Time
	shuffled []nemesis
}

func newSchedule(t *testing.T) *schedule {
	t.Helper()
	s := &schedule{seed: uint64(time.Now().UnixNano())}
	if v := os.Getenv("FLIGHTSINK_TEST_FAULTS_SEED"); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("FLIGHTSINK_TEST_FAULTS_SEED=%q: %v", v, err)
		}
		s.seed = seed
	}
	if v := os.Getenv("FLIGHTSINK_TEST_FAULTS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("FLIGHTSINK_TEST_FAULTS_DURATION=%q: want a duration such as 10m (%v)", v, err)
		}
		s.long = d
	}
	s.rng = rand.New(rand.NewPCG(s.seed, 16))
	s.shuffled = append([]nemesis(nil), nemeses...)
	s.rng.Shuffle(len(s.shuffled), func(i, j int) { s.shuffled[i], s.shuffled[j] = s.shuffled[j], s.shuffled[i] })
	s.started = time.Now()
	kind := "short (every fault once)"
	if s.long > 0 {
		kind = "long (" + s.long.String() + ")"
	}
	t.Logf("nemesis schedule: %s, seed %d (FLIGHTSINK_TEST_FAULTS_SEED=%d repeats its choices)", kind, s.seed, s.seed)
	return s
}

// next is the i-th fault and its hold, or false when the schedule is over.
func (s *schedule) next(i int) (nemesis, time.Duration, bool) {
	if s.long == 0 {
		if i >= len(s.shuffled) {
			return nemesis{}, 0, false
		}
		return s.shuffled[i], time.Duration(3+s.rng.IntN(3)) * time.Second, true
	}
	if time.Since(s.started) > s.long {
		return nemesis{}, 0, false
	}
	return nemeses[s.rng.IntN(len(nemeses))], time.Duration(3+s.rng.IntN(15)) * time.Second, true
}

// measured is what one fault did to the writer.
type measured struct {
	kind, target       string
	hold, afterHeal    time.Duration
	ackGap             time.Duration // the longest time without a new ack, from the fault's start to recovery
	failedAttempts     int
	start, healed, ack time.Time
}

// TestNemesis: a named writer streams with pipelined checkpoints while the
// schedule's faults hit the cluster and flightsink, one after the other
// (each from a healed cluster). After each, the writer must acknowledge a
// new checkpoint; at the end every row is in Kafka exactly once, in per-key
// order, every acknowledged checkpoint among them, no transaction open.
func TestNemesis(t *testing.T) {
	c := theCluster
	sched := newSchedule(t)
	topic := kafkatest.TopicName(t)
	const parts = 4
	c.createTopic(t, topic, parts)
	prefix := fmt.Sprintf("nemesis%d", time.Now().UnixNano()%1_000_000)
	srv := startServer(t, c.brokers, prefix)
	writerID := "nemesis-" + topic
	ctx, cancel := context.WithTimeout(context.Background(), sched.long+10*time.Minute)
	defer cancel()

	w := newWriter(t, srv.addr, topic, writerID)
	stop, result := make(chan struct{}), make(chan error, 1)
	go func() { result <- w.run(ctx, stop) }()
	waitAck(t, w, time.Time{}, result)

	f := &fault{t: t, c: c, srv: srv, topic: topic, parts: parts, txnID: prefix + "-w-" + writerID, rng: sched.rng}
	var all []measured
	for i := 0; ; i++ {
		nem, hold, ok := sched.next(i)
		if !ok {
			break
		}
		c.waitHealthy(t, topic, "__transaction_state", "flightsink-writers", "flightsink-replicas")
		f.hold = hold
		m := measured{kind: nem.name, start: time.Now()}
		target, heal := nem.apply(f)
		m.target = target
		time.Sleep(f.hold)
		heal()
		m.healed = time.Now()
		m.hold = m.healed.Sub(m.start)
		m.ack = waitAck(t, w, m.healed, result)
		m.afterHeal = m.ack.Sub(m.healed)
		m.ackGap = w.longestGap(m.start, m.ack)
		m.failedAttempts = w.failuresBetween(m.start, m.ack)
		t.Logf("fault %d %s on %s: held %v; first ack %v after healing, longest time without an ack %v, %d failed attempts resumed",
			i+1, m.kind, m.target, m.hold.Round(time.Millisecond), m.afterHeal.Round(time.Millisecond),
			m.ackGap.Round(time.Millisecond), m.failedAttempts)
		all = append(all, m)
	}
	close(stop)
	if err := <-result; err != nil {
		t.Fatalf("the writer: %v", err)
	}
	w.verify(t, c.brokers)
	report(t, sched, w, all)
}

// waitAck waits for the writer's first ack after since and returns when it
// came; the writer ending, or five minutes without an ack, fails the test.
func waitAck(t *testing.T, w *writer, since time.Time, result <-chan error) time.Time {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if at := w.firstAckAfter(since); !at.IsZero() {
			return at
		}
		select {
		case err := <-result:
			t.Fatalf("the writer ended while the schedule runs: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint acknowledged for 5 minutes after %v", since.Format(time.TimeOnly))
		}
	}
}

// report logs the figures per fault kind and appends them to
// FLIGHTSINK_TEST_FAULTS_REPORT when set.
func report(t *testing.T, sched *schedule, w *writer, all []measured) {
	t.Helper()
	var b strings.Builder
	w.mu.Lock()
	rows, failures := w.done.CommittedRows, len(w.failures)
	w.mu.Unlock()
	fmt.Fprintf(&b, "\n### %s, seed %d, %d faults in %v\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		sched.seed, len(all), time.Since(sched.started).Round(time.Second))
	fmt.Fprintf(&b, "%d rows committed, 0 duplicated, 0 missing, %d failed attempts resumed\n\n", rows, failures)
	fmt.Fprintf(&b, "| fault | target | held | first ack after healing | longest without an ack | failed attempts |\n|---|---|---|---|---|---|\n")
	for _, m := range all {
		fmt.Fprintf(&b, "| %s | %s | %.1f s | %.1f s | %.1f s | %d |\n", m.kind, m.target, m.hold.Seconds(),
			m.afterHeal.Seconds(), m.ackGap.Seconds(), m.failedAttempts)
	}
	t.Log(b.String())
	if path := os.Getenv("FLIGHTSINK_TEST_FAULTS_REPORT"); path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(b.String()); err != nil {
			t.Fatal(err)
		}
	}
}
