package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"gopkg.in/yaml.v3"

	client "github.com/flightsink/flightsink/clients/go/fsclient"
	"github.com/flightsink/flightsink/cmd/flightsink/config"
	"github.com/flightsink/flightsink/internal/kafkatest"
	"github.com/flightsink/flightsink/kafka"
)

// Replica names (issue 21): a server claims its kafka.replica in Kafka
// before it serves, because two live servers with one name abort each
// other's exactly-once transactions.

const streamRows, streamCheckpoints = 100, 5

// anonStream is one anonymous exactly-once stream: streamCheckpoints
// checkpoints of streamRows rows with ids [first, first+500).
func anonStream(ctx context.Context, addr, topic string, first int64) error {
	c, err := client.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	w, err := c.Open(ctx, client.Descriptor{Topic: topic, KeyField: "key", Delivery: "exactly_once"}, rowSchema)
	if err != nil {
		return err
	}
	for i := int64(0); i < streamCheckpoints; i++ {
		rec := rows(first+i*streamRows, streamRows)
		err := w.Write(rec)
		rec.Release()
		if err != nil {
			return err
		}
		if _, err := w.Checkpoint(ctx); err != nil {
			return err
		}
	}
	_, err = w.Close(ctx)
	return err
}

// load runs anonymous exactly-once streams from several clients until
// stopped, numbering their rows from one counter, and keeps every failure.
type load struct {
	t       *testing.T
	ctx     context.Context
	next    *atomic.Int64 // the first id of the next stream
	ok      atomic.Int64  // streams that ended cleanly
	quit    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	failed  []string
	stopped bool
}

func newLoad(t *testing.T, ctx context.Context) *load {
	return &load{t: t, ctx: ctx, next: &atomic.Int64{}, quit: make(chan struct{})}
}

// run starts clients that each open streams on addr one after the other.
func (l *load) run(addr, topic string, clients int) {
	for range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.quit:
					return
				default:
				}
				first := l.next.Add(streamRows*streamCheckpoints) - streamRows*streamCheckpoints
				if err := anonStream(l.ctx, addr, topic, first); err != nil {
					l.mu.Lock()
					l.failed = append(l.failed, fmt.Sprintf("stream of ids %d..: %v", first, err))
					l.mu.Unlock()
					continue
				}
				l.ok.Add(1)
			}
		}()
	}
}

// ended is the number of streams that ended, cleanly or not.
func (l *load) ended() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok.Load() + int64(len(l.failed))
}

// waitStreams waits until n streams ended.
func (l *load) waitStreams(n int64) {
	l.t.Helper()
	waitUntil(l.t, fmt.Sprintf("%d streams to end", n), func() bool { return l.ended() >= n })
}

// stop ends the clients after their current stream and returns the total
// rows written and the failures.
func (l *load) stop() (int64, []string) {
	if !l.stopped {
		l.stopped = true
		close(l.quit)
		l.wg.Wait()
	}
	return l.next.Load(), l.failed
}

// checkIDsOnce reads the topic read_committed: every id in [0, total)
// exactly once (concurrent streams interleave, so order is not checked).
func checkIDsOnce(t *testing.T, brokers []string, topic string, total int64) {
	t.Helper()
	seen := make([]int, total)
	for _, r := range kafkatest.ReadCommitted(t, brokers, topic) {
		var v struct{ ID int64 }
		if err := json.Unmarshal(r.Value, &v); err != nil || v.ID < 0 || v.ID >= total {
			t.Fatalf("unexpected record %q (%v)", r.Value, err)
		}
		seen[v.ID]++
	}
	bad := 0
	for id, n := range seen {
		if n != 1 {
			if bad++; bad <= 5 {
				t.Errorf("id %d is in the topic %d times", id, n)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d ids not exactly once", bad, total)
	}
	t.Logf("read_committed: all %d ids exactly once", total)
}

// readyz returns /readyz's status and body.
func readyz(t *testing.T, maddr string) (int, string) {
	t.Helper()
	return httpGet("http://" + maddr + "/readyz")
}

// claimedName is the replica /readyz names, waiting for the server to be ready.
func claimedName(t *testing.T, maddr string) string {
	t.Helper()
	var body string
	waitUntil(t, "/readyz on "+maddr+" to answer 200", func() bool {
		var code int
		code, body = readyz(t, maddr)
		return code == http.StatusOK
	})
	m := regexp.MustCompile(`(?m)^replica: (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("/readyz does not name the replica: %q", body)
	}
	return m[1]
}

func requireMetric(t *testing.T, maddr, line string) {
	t.Helper()
	_, body := httpGet("http://" + maddr + "/metrics")
	if !strings.Contains(body, line+"\n") {
		t.Fatalf("/metrics lacks %q:\n%s", line, grepLines(body, "flightsink_replica"))
	}
}

// TestSameReplicaNameRefused: while a server with replica name "same"
// serves four clients' anonymous exactly-once streams, a second server with
// the same name refuses to start, naming the first (address, start time)
// and the setting to change. The first keeps serving: every one of its
// streams succeeds and every row is in Kafka exactly once.
func TestSameReplicaNameRefused(t *testing.T) {
	brokers := testBrokers(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, brokers, topic, 2, nil)
	prefix := uniquePrefix(t)
	maddr := freeAddr(t)
	launched := time.Now().UTC()
	a := startServer(t, serverConfig{brokers: brokers, replica: "same", prefix: prefix,
		env: []string{"FLIGHTSINK_METRICS_LISTEN=" + maddr}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ld := newLoad(t, ctx)
	defer ld.stop()
	ld.run(a.addr, topic, 4)
	ld.waitStreams(4) // the first server is busy with exactly-once streams

	b := newServer(t, serverConfig{brokers: brokers, replica: "same", prefix: prefix})
	serving := b.launch()
	select {
	case <-serving:
		t.Fatalf("a second server with kafka.replica \"same\" started serving next to a live one:\n%s", b.log())
	case <-b.done:
	case <-time.After(time.Minute):
		t.Fatalf("the second server neither served nor exited within a minute:\n%s", b.log())
	}
	if code := b.cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("the second server exited with %d, want 1", code)
	}
	refusal := b.log()
	for _, want := range []string{
		`kafka.replica "same" is held by a flightsink at ` + a.addr,
		"kafka.replica (FLIGHTSINK_KAFKA_REPLICA)",
	} {
		if !strings.Contains(refusal, want) {
			t.Errorf("the refusal lacks %q:\n%s", want, refusal)
		}
	}
	// The holder's start time, to the second, between its launch and now.
	m := regexp.MustCompile(`started (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)`).FindStringSubmatch(lastLine(refusal))
	if m == nil {
		t.Fatalf("the refusal does not say when the holder started:\n%s", refusal)
	}
	if at, err := time.Parse(time.RFC3339, m[1]); err != nil || at.Before(launched.Truncate(time.Second)) || at.After(time.Now()) {
		t.Errorf("the refusal says the holder started %s (%v); it was launched at %s", m[1], err, launched.Format(time.RFC3339))
	}
	t.Logf("the second server refused: %s", lastLine(refusal))

	ld.waitStreams(ld.ended() + 8) // the first server keeps serving
	total, failed := ld.stop()
	if len(failed) > 0 {
		t.Fatalf("%d streams on the first server failed, e.g. %s", len(failed), failed[0])
	}
	t.Logf("%d streams on the first server, none failed", ld.ok.Load())
	if code, body := readyz(t, maddr); code != http.StatusOK || body != "ready\nreplica: same\n" {
		t.Fatalf("/readyz of the first server: %d %q", code, body)
	}
	requireMetric(t, maddr, `flightsink_replica_claimed{replica="same"} 1`)
	checkIDsOnce(t, brokers, topic, total)
}

// TestCrashedReplicaNameExpires: a server is SIGKILLed while an anonymous
// exactly-once stream has an open transaction. A new server with the same
// name waits for the dead server's claim to expire (the test's
// kafka.replica_claim_ttl is 2s), takes the name over and re-initialises its
// pool: right when it serves, no transaction is left open (last stable
// offset = high watermark; kafka.transaction_timeout is 5m, so the broker
// did not abort it on its own) and the aborted rows are invisible.
func TestCrashedReplicaNameExpires(t *testing.T) {
	brokers := testBrokers(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, brokers, topic, 1, nil)
	prefix := uniquePrefix(t)
	env := []string{"FLIGHTSINK_KAFKA_TRANSACTION_TIMEOUT=5m"}
	a := startServer(t, serverConfig{brokers: brokers, replica: "crash", prefix: prefix, env: env})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	c, err := client.Dial(a.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w, err := c.Open(ctx, client.Descriptor{Topic: topic, Delivery: "exactly_once"}, rowSchema)
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, 0, 50)
	waitUntil(t, "the open transaction's records to reach the log", func() bool {
		return len(kafkatest.ReadUncommitted(t, brokers, topic)) == 50
	})
	a.kill()
	if kafkatest.LastStableEqualsHighWatermark(t, brokers, topic) {
		t.Fatal("no open transaction after the kill; the test cannot show the new server's effect")
	}

	maddr := freeAddr(t)
	b := startServer(t, serverConfig{brokers: brokers, replica: "crash", prefix: prefix,
		env: append(env, "FLIGHTSINK_METRICS_LISTEN="+maddr)})
	if !kafkatest.LastStableEqualsHighWatermark(t, brokers, topic) {
		t.Fatal("the new server serves, but the dead server's transaction still holds back read_committed consumers")
	}
	if n := len(kafkatest.ReadCommitted(t, brokers, topic)); n != 0 {
		t.Fatalf("read_committed shows %d records of the aborted transaction", n)
	}
	logs := b.log()
	for _, want := range []string{
		"waiting for its heartbeat or for its claim to expire",
		`"previous_holder":"a flightsink at ` + a.addr,
	} {
		if !strings.Contains(logs, want) {
			t.Fatalf("the new server's log lacks %q: it did not take the name over from the dead server:\n%s", want, logs)
		}
	}
	if name := claimedName(t, maddr); name != "crash" {
		t.Fatalf("the new server claimed %q", name)
	}
	requireMetric(t, maddr, `flightsink_replica_claimed{replica="crash"} 1`)
	if err := anonStream(ctx, b.addr, topic, 1000); err != nil {
		t.Fatalf("a stream on the new server: %v", err)
	}
}

// TestFrozenReplicaLosesItsName: a server frozen (SIGSTOP: a long GC
// pause, a suspended VM) for longer than its claim TTL looks dead, and a new
// server with the same name takes the name over. When the frozen one
// resumes it learns at its next heartbeat that it lost the name: /readyz
// turns 503 naming the new holder, flightsink_replica_claimed drops to 0,
// and it refuses exactly-once streams with a retryable Unavailable, while
// the new holder serves them.
func TestFrozenReplicaLosesItsName(t *testing.T) {
	brokers := testBrokers(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, brokers, topic, 1, nil)
	prefix := uniquePrefix(t)
	maddrA, maddrB := freeAddr(t), freeAddr(t)
	a := startServer(t, serverConfig{brokers: brokers, replica: "frozen", prefix: prefix,
		env: []string{"FLIGHTSINK_METRICS_LISTEN=" + maddrA}})
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = a.cmd.Process.Signal(syscall.SIGCONT)
		}
	}
	defer resume()
	b := startServer(t, serverConfig{brokers: brokers, replica: "frozen", prefix: prefix,
		env: []string{"FLIGHTSINK_METRICS_LISTEN=" + maddrB}})
	if !strings.Contains(b.log(), `"previous_holder":"a flightsink at `+a.addr) {
		t.Fatalf("the new server did not take the name over from the frozen one:\n%s", b.log())
	}
	resume()

	var body string
	waitUntil(t, "the resumed server's /readyz to say it lost its name", func() bool {
		var code int
		code, body = readyz(t, maddrA)
		return code == http.StatusServiceUnavailable && strings.Contains(body, "taken over by a flightsink at "+b.addr)
	})
	if !strings.HasSuffix(body, "\nreplica: frozen\n") {
		t.Fatalf("/readyz of the resumed server does not name its replica: %q", body)
	}
	requireMetric(t, maddrA, `flightsink_replica_claimed{replica="frozen"} 0`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := anonStream(ctx, a.addr, topic, 0)
	var fe *client.Error
	if !errors.As(err, &fe) || fe.Code != codes.Unavailable || !fe.Retryable() || !strings.Contains(fe.Message, "replica") {
		t.Fatalf("an exactly-once stream on the server that lost its name: %v; want a retryable Unavailable naming the replica claim", err)
	}
	if err := anonStream(ctx, b.addr, topic, 0); err != nil {
		t.Fatalf("an exactly-once stream on the new holder: %v", err)
	}
	if name := claimedName(t, maddrB); name != "frozen" {
		t.Fatalf("the new holder claimed %q", name)
	}
	checkIDsOnce(t, brokers, topic, streamRows*streamCheckpoints)
}

// TestScaledOutReplicasNeverFence: two servers with identical settings (the
// docker compose scale-out: kafka.replica "scale" with 4 slots) start at the
// same moment, claim distinct names, and serve four clients each of
// concurrent anonymous exactly-once streams without a single failure
// (before replica names were claimed, two servers with one name fenced
// most of such streams).
func TestScaledOutReplicasNeverFence(t *testing.T) {
	brokers := testBrokers(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, brokers, topic, 4, nil)
	prefix := uniquePrefix(t)
	var servers []*server
	var maddrs []string
	for range 2 {
		maddr := freeAddr(t)
		s := newServer(t, serverConfig{brokers: brokers, replica: "scale", prefix: prefix,
			env: []string{"FLIGHTSINK_KAFKA_REPLICA_SLOTS=4", "FLIGHTSINK_METRICS_LISTEN=" + maddr}})
		servers, maddrs = append(servers, s), append(maddrs, maddr)
	}
	for _, s := range servers { // both at once, as docker compose starts them
		s.launch()
	}
	for _, s := range servers {
		s.wait()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ld := newLoad(t, ctx)
	defer ld.stop()
	for _, s := range servers {
		ld.run(s.addr, topic, 4)
	}
	ld.waitStreams(24)
	total, failed := ld.stop()
	if len(failed) > 0 {
		t.Fatalf("%d of %d streams failed, e.g. %s", len(failed), int64(len(failed))+ld.ok.Load(), failed[0])
	}
	for i, maddr := range maddrs {
		_, body := httpGet("http://" + maddr + "/metrics")
		if strings.Contains(body, `outcome="fenced"`) {
			t.Errorf("server %d counted fenced streams:\n%s", i, grepLines(body, "flightsink_streams_total"))
		}
	}
	t.Logf("%d concurrent streams on two servers, none failed", ld.ok.Load())
	checkIDsOnce(t, brokers, topic, total)
	names := map[string]bool{}
	for _, maddr := range maddrs {
		name := claimedName(t, maddr)
		if !regexp.MustCompile(`^scale-[0-3]$`).MatchString(name) {
			t.Fatalf("claimed %q, want one of scale-0 … scale-3", name)
		}
		requireMetric(t, maddr, `flightsink_replica_claimed{replica="`+name+`"} 1`)
		names[name] = true
	}
	if len(names) != 2 {
		t.Fatalf("both servers claimed %v", names)
	}
	t.Logf("claimed names: %v", names)
}

// TestComposeScaleOutNaming: `docker compose up --scale flightsink=N` needs
// no per-replica setting. The compose file's flightsink service has no
// fixed container name or host name, publishes host port ranges (not one
// port two containers would fight over) at least as wide as its replica
// slots, and sets kafka.replica plus kafka.replica_slots, whose names, as
// the server reads them, are distinct, valid and bounded: N containers
// claim N distinct names of the fixed set, so the transactional-id pool on
// the brokers stays bounded across restarts.
func TestComposeScaleOutNaming(t *testing.T) {
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			ContainerName string            `yaml:"container_name"`
			Hostname      string            `yaml:"hostname"`
			Ports         []string          `yaml:"ports"`
			Environment   map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	fs, ok := compose.Services["flightsink"]
	if !ok {
		t.Fatal("docker-compose.yml has no flightsink service")
	}
	if fs.ContainerName != "" || fs.Hostname != "" {
		t.Fatalf("flightsink has a fixed container_name %q / hostname %q: it cannot be scaled out", fs.ContainerName, fs.Hostname)
	}
	var environ []string
	for k, v := range fs.Environment {
		environ = append(environ, k+"="+v)
	}
	cfg, err := config.Load("", environ)
	if err != nil {
		t.Fatalf("the compose environment: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the compose environment: %v", err)
	}
	slots := cfg.Kafka.ReplicaSlots
	if slots < 2 {
		t.Fatalf("kafka.replica_slots is %d (FLIGHTSINK_KAFKA_REPLICA_SLOTS %q): every container would claim the one name %q, so a second one is refused",
			slots, fs.Environment["FLIGHTSINK_KAFKA_REPLICA_SLOTS"], cfg.Kafka.Replica)
	}
	names := kafka.ReplicaNames(cfg.Kafka)
	ids := map[string]bool{}
	for _, name := range names {
		ids[cfg.Kafka.ClaimTransactionalID(name)] = true
	}
	if len(names) != slots || len(ids) != slots {
		t.Fatalf("%d slots give names %v (%d distinct claim ids)", slots, names, len(ids))
	}
	for n, name := range names {
		if want := cfg.Kafka.Replica + "-" + strconv.Itoa(n); name != want {
			t.Fatalf("slot %d is named %q, want %q", n, name, want)
		}
	}
	// Every published port is a host range (or no host port at all) wide enough for every slot.
	for _, p := range fs.Ports {
		host, container, ok := strings.Cut(p, ":")
		if !ok {
			continue // container port only: Docker picks a free host port
		}
		if strings.Contains(container, ":") {
			t.Fatalf("port %q: host IPs are not expected", p)
		}
		lo, hi, isRange := strings.Cut(host, "-")
		if !isRange {
			t.Fatalf("port %q publishes one host port: a second container cannot bind it", p)
		}
		l, err1 := strconv.Atoi(lo)
		h, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || h-l+1 < slots {
			t.Fatalf("port %q: the host range must hold at least kafka.replica_slots=%d ports", p, slots)
		}
	}
	t.Logf("compose: kafka.replica %q, %d slots: %s … %s", cfg.Kafka.Replica, slots, names[0], names[len(names)-1])
}
