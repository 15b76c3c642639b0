package kafka

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/flightsink/flightsink/internal/kafkatest"
)

// TestClaimStateRules: the replay rules every server applies to the replica
// topic. The first claim on a free name wins; a claim on a held name wins
// only if it names the holder and the holder's last record it saw; a
// heartbeat is the holder's proof (only the latest producer of the claim id
// can write one); only the holder's own release frees the name.
func TestClaimStateRules(t *testing.T) {
	rec := func(kind, session, replaces string, replacesOffset int64) claimRecord {
		return claimRecord{Kind: kind, Session: session, Replaces: replaces, ReplacesOffset: replacesOffset}
	}
	holder := func(st claimState) string {
		if h := st["k"]; h != nil {
			return h.rec.Session + "@" + strconv.FormatInt(h.offset, 10)
		}
		return "free"
	}
	for _, tc := range []struct {
		name string
		recs []claimRecord
		want string
	}{
		{"first claim on a free name wins", []claimRecord{rec("claim", "a", "", -1), rec("claim", "b", "", -1)}, "a@0"},
		{"heartbeats keep the holder", []claimRecord{rec("claim", "a", "", -1), rec("heartbeat", "a", "", -1), rec("heartbeat", "a", "", -1)}, "a@2"},
		{"a takeover naming the holder's last record wins",
			[]claimRecord{rec("claim", "a", "", -1), rec("heartbeat", "a", "", -1), rec("claim", "b", "a", 1)}, "b@2"},
		{"a takeover after a newer heartbeat loses",
			[]claimRecord{rec("claim", "a", "", -1), rec("heartbeat", "a", "", -1), rec("heartbeat", "a", "", -1), rec("claim", "b", "a", 1)}, "a@2"},
		{"of two takeovers of one holder the first wins",
			[]claimRecord{rec("claim", "a", "", -1), rec("claim", "b", "a", 0), rec("claim", "c", "a", 0)}, "b@1"},
		{"a claim on a held name naming nobody loses", []claimRecord{rec("claim", "a", "", -1), rec("claim", "b", "", -1)}, "a@0"},
		{"the holder's release frees the name", []claimRecord{rec("claim", "a", "", -1), rec("release", "a", "", -1)}, "free"},
		{"another session's release does not", []claimRecord{rec("claim", "a", "", -1), rec("release", "b", "", -1)}, "a@0"},
		{"after a release the next claim wins", []claimRecord{rec("claim", "a", "", -1), rec("release", "a", "", -1), rec("claim", "b", "a", 0)}, "b@2"},
		{"a heartbeat of another session takes over (it holds the claim id)",
			[]claimRecord{rec("claim", "a", "", -1), rec("heartbeat", "b", "", -1)}, "b@1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := claimState{}
			for i, r := range tc.recs {
				st.apply("k", r, int64(i))
			}
			if got := holder(st); got != tc.want {
				t.Fatalf("holder %s, want %s", got, tc.want)
			}
		})
	}
}

// TestClaimStaleWithoutHeartbeat: a claim whose last committed heartbeat is
// older than kafka.replica_claim_ttl is not held (a newcomer may take the
// name after one TTL), and held again once a heartbeat commits.
func TestClaimStaleWithoutHeartbeat(t *testing.T) {
	now := time.Unix(1000, 0)
	c := &ReplicaClaim{name: "r", ttl: 3 * time.Second, now: func() time.Time { return now }, lastOK: now}
	if err := c.Err(); err != nil {
		t.Fatalf("fresh claim: %v", err)
	}
	now = now.Add(3 * time.Second)
	if err := c.Err(); err != nil {
		t.Fatalf("at exactly one TTL: %v", err)
	}
	now = now.Add(time.Millisecond)
	c.lastErr = errors.New("broker down")
	if err := c.Err(); !errors.Is(err, ErrReplicaNotHeld) || !strings.Contains(err.Error(), "kafka.replica_claim_ttl") ||
		!strings.Contains(err.Error(), "broker down") {
		t.Fatalf("past the TTL: %v; want ErrReplicaNotHeld naming the setting and the last error", err)
	}
	c.lastOK = now
	if err := c.Err(); err != nil {
		t.Fatalf("after a heartbeat: %v", err)
	}
}

// TestReplicaNames: without slots the name is kafka.replica; with slots,
// <replica>-0 … <replica>-(n-1), each a valid pool id part.
func TestReplicaNames(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Replica = "compose"
	if got := ReplicaNames(cfg); len(got) != 1 || got[0] != "compose" {
		t.Fatalf("no slots: %v", got)
	}
	cfg.ReplicaSlots = 3
	if got := strings.Join(ReplicaNames(cfg), ","); got != "compose-0,compose-1,compose-2" {
		t.Fatalf("3 slots: %v", got)
	}
	cfg.ReplicaSlots = -1
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "kafka.replica_slots") {
		t.Fatalf("negative slots: %v", err)
	}
	cfg.ReplicaSlots = 0
	cfg.ReplicaClaimTTL = 100 * time.Millisecond
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "kafka.replica_claim_ttl") {
		t.Fatalf("TTL 100ms: %v", err)
	}
}

// claimEnv makes sinks that share one transactional-id prefix (so their
// replica names collide) on the test broker.
type claimEnv struct {
	t       *testing.T
	brokers []string
	prefix  string
	logs    *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newClaimEnv(t *testing.T) *claimEnv {
	brokers, _ := kafkatest.Brokers(t)
	return &claimEnv{t: t, brokers: brokers, prefix: "claimtest-" + strconv.FormatInt(time.Now().UnixNano(), 36), logs: &lockedBuffer{}}
}

func (e *claimEnv) sink(replica string, slots int, ttl time.Duration) *Sink {
	e.t.Helper()
	cfg := DefaultConfig()
	cfg.Brokers = e.brokers
	cfg.TransactionalIDPrefix = e.prefix
	cfg.Replica, cfg.ReplicaSlots, cfg.ReplicaClaimTTL = replica, slots, ttl
	cfg.ProduceTimeout = 10 * time.Second
	cfg.MaxExactlyOnceStreams = 2
	log := zerolog.New(zerolog.MultiLevelWriter(zerolog.NewTestWriter(e.t), e.logs))
	s, err := NewSink(cfg, log)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(s.Close)
	return s
}

func identity(addr string) ReplicaIdentity {
	return ReplicaIdentity{Address: addr, Host: "host-" + addr, PID: 42, Started: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
}

// abandon stops a claim the way a crash does: no release, no heartbeat.
func (c *ReplicaClaim) abandon() {
	c.closeOnce.Do(func() {
		c.cancel()
		<-c.done
		c.mu.Lock()
		c.released = true
		if c.cl != nil {
			c.cl.Close()
			c.cl = nil
		}
		c.mu.Unlock()
	})
}

// TestClaimRefusedWhileHeld: a second server with the same name is refused
// with an error naming the holder (address, start time) and the setting to
// change; the holder keeps its claim.
func TestClaimRefusedWhileHeld(t *testing.T) {
	e := newClaimEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := e.sink("same", 0, 2*time.Second).ClaimReplica(ctx, identity("10.0.0.1:8815"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Name() != "same" {
		t.Fatalf("claimed %q", a.Name())
	}
	_, err = e.sink("same", 0, 2*time.Second).ClaimReplica(ctx, identity("10.0.0.2:8815"), nil)
	if !errors.Is(err, ErrReplicaInUse) {
		t.Fatalf("second claim: %v; want ErrReplicaInUse", err)
	}
	for _, want := range []string{"10.0.0.1:8815", "pid 42", "2026-11-26T12:00:00Z", "kafka.replica", "FLIGHTSINK_KAFKA_REPLICA"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error lacks %q: %v", want, err)
		}
	}
	if err := a.Err(); err != nil {
		t.Fatalf("the holder lost its claim: %v", err)
	}
}

// TestClaimReleasedIsFreeAtOnce: after a clean release the next server
// with the name claims it without waiting: with a TTL of five minutes and a
// one-minute deadline, only the release can let it in.
func TestClaimReleasedIsFreeAtOnce(t *testing.T) {
	e := newClaimEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := e.sink("rel", 0, 5*time.Minute).ClaimReplica(ctx, identity("a:1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Release(ctx)
	if _, err := e.sink("rel", 0, 5*time.Minute).ClaimReplica(ctx, identity("b:1"), nil); err != nil {
		t.Fatalf("claim after a release: %v", err)
	}
}

// TestClaimOfCrashedHolderExpires: a holder that stops heartbeating without
// a release (a crash) keeps its name for one TTL; then a new server takes
// it over, and the crashed holder's claim producer is fenced.
func TestClaimOfCrashedHolderExpires(t *testing.T) {
	e := newClaimEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := e.sink("crash", 0, time.Second).ClaimReplica(ctx, identity("a:1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	a.abandon()
	b, err := e.sink("crash", 0, time.Second).ClaimReplica(ctx, identity("b:1"), nil)
	if err != nil {
		t.Fatalf("claim after the holder crashed: %v", err)
	}
	if b.Name() != "crash" || b.Err() != nil {
		t.Fatalf("claimed %q: %v", b.Name(), b.Err())
	}
	if logs := e.logs.String(); !strings.Contains(logs, "waiting for its heartbeat or for its claim to expire") || !strings.Contains(logs, `"previous_holder":"a flightsink at a:1`) {
		t.Fatalf("the logs do not show the wait for the crashed holder:\n%s", logs)
	}
}

// TestClaimLostWhileRunning: when another server takes the name over (here
// one that skipped the check, as a misconfigured server could), the holder
// learns it at its next heartbeat: its claim reports not held, naming the
// other server, and it opens no exactly-once stream.
func TestClaimLostWhileRunning(t *testing.T) {
	e := newClaimEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sa := e.sink("lost", 0, 2*time.Second)
	changes := make(chan ReplicaStatus, 10)
	a, err := sa.ClaimReplica(ctx, identity("a:1"), func(st ReplicaStatus) { changes <- st })
	if err != nil {
		t.Fatal(err)
	}
	if st := <-changes; !st.Held || st.Name != "lost" {
		t.Fatalf("first status %+v", st)
	}
	// A rogue claim: the heartbeat producer of the same name, started without claiming.
	sb := e.sink("lost", 0, 2*time.Second)
	rogue := &ReplicaClaim{sink: sb, name: "lost", key: sb.cfg.poolStem("lost"), ttl: 2 * time.Second, interval: time.Second,
		now: time.Now, self: claimRecord{Session: "rogue", Address: "rogue:9", Host: "elsewhere", PID: 7, TTLMs: 2000}}
	if err := rogue.firstBeat(ctx); err != nil {
		t.Fatal(err)
	}
	defer rogue.cl.Close()
	select {
	case st := <-changes:
		if st.Held || !errors.Is(st.Err, ErrReplicaNotHeld) || !strings.Contains(st.Err.Error(), "rogue:9") {
			t.Fatalf("status after the takeover: %+v; want not held, naming rogue:9", st)
		}
	case <-ctx.Done():
		t.Fatal("the holder never noticed it lost its name")
	}
	if err := a.Err(); !errors.Is(err, ErrReplicaNotHeld) {
		t.Fatalf("Err after the takeover: %v", err)
	}
	if _, err := sa.OpenExactlyOnce(ctx, "any-topic", ""); !errors.Is(err, ErrUnavailable) ||
		!strings.Contains(err.Error(), "replica") {
		t.Fatalf("OpenExactlyOnce after the loss: %v; want ErrUnavailable naming the replica claim", err)
	}
}

// TestClaimSlots: servers with the same base name and slots claim distinct
// names, lowest first, even when they start at the same moment; when every
// slot is held by a live server the next is refused, naming the holders and
// kafka.replica_slots.
func TestClaimSlots(t *testing.T) {
	e := newClaimEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	names := make([]string, 2)
	errs := make([]error, 2)
	for i := range names {
		s := e.sink("slot", 2, 2*time.Second)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := s.ClaimReplica(ctx, identity("s"+strconv.Itoa(i)+":1"), nil)
			errs[i] = err
			if err == nil {
				names[i] = c.Name()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if names[0] == names[1] || !strings.HasPrefix(names[0], "slot-") || !strings.HasPrefix(names[1], "slot-") {
		t.Fatalf("claimed %v; want slot-0 and slot-1", names)
	}
	_, err := e.sink("slot", 2, 2*time.Second).ClaimReplica(ctx, identity("s2:1"), nil)
	if !errors.Is(err, ErrReplicaInUse) || !strings.Contains(err.Error(), "kafka.replica_slots") ||
		!strings.Contains(err.Error(), "s0:1") || !strings.Contains(err.Error(), "s1:1") {
		t.Fatalf("third server: %v; want ErrReplicaInUse naming both holders and kafka.replica_slots", err)
	}
}
