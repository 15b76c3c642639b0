package kafka

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A server owns the transactional ids <prefix>-p-<replica>-<n> of its
// exactly-once pool, and re-initialises them at start-up, which aborts
// whatever a previous holder of the name left open. Two live servers with
// one name would abort each other's transactions, so a server first claims
// its name in Kafka (ClaimReplica) and holds it while it runs:
//
//   - The claim is a record in the replica topic (replica_log.go), decided by
//     the order of the log: the first claim on a free name wins.
//   - The holder then initialises the name's own transactional id
//     <prefix>-r-<replica> and heartbeats in transactions of it. Kafka's
//     producer fencing is the guarantee: whoever initialised that id last is
//     the only one whose heartbeats succeed, so a server that lost its name
//     learns it at its next heartbeat.
//   - A name whose holder wrote nothing for its kafka.replica_claim_ttl while
//     a newcomer watched is expired: a crashed server's name is free again
//     within one TTL of a newcomer starting to look. A clean shutdown
//     releases the name at once.
//   - The holder considers its claim held while a heartbeat succeeded within
//     the TTL (a newcomer waits at least that long), and takes no new
//     exactly-once streams otherwise.

// ErrReplicaInUse means every name this server may use is held by another
// live server; the message names the holders and the setting to change.
var ErrReplicaInUse = errors.New("replica name in use")

// ErrReplicaNotHeld means this server does not hold its replica claim (lost
// to another server, or not renewed within kafka.replica_claim_ttl), so it
// must not touch its transactional-id pool.
var ErrReplicaNotHeld = errors.New("replica claim not held")

// ReplicaIdentity is what a server says about itself in its claim, so that
// another server that finds the name in use can say who holds it.
type ReplicaIdentity struct {
	// Address is where clients reach the server (its Flight address).
	Address string
	// Host is the machine's (container's, pod's) host name.
	Host string
	// PID is the server's process id.
	PID int
	// Started is when the server process started.
	Started time.Time
}

// ReplicaStatus is a claim's state, reported on every change.
type ReplicaStatus struct {
	// Name is the claimed replica name.
	Name string
	// Held is true while the server may use the name's pool.
	Held bool
	// Err says why the name is not held (nil while held).
	Err error
}

// ReplicaNames are the names a server with cfg may claim, in order of
// preference: kafka.replica itself, or with kafka.replica_slots = N the
// names <replica>-0 … <replica>-(N-1).
func ReplicaNames(cfg Config) []string {
	if cfg.ReplicaSlots <= 0 {
		return []string{cfg.Replica}
	}
	names := make([]string, cfg.ReplicaSlots)
	for n := range names {
		names[n] = cfg.Replica + "-" + strconv.Itoa(n)
	}
	return names
}

// poolStem is the common start of a replica's pool ids, and its key in the
// replica topic.
func (c *Config) poolStem(replica string) string {
	return c.TransactionalIDPrefix + "-p-" + replica
}

// ClaimTransactionalID is the transactional id whose producer heartbeats a
// replica's claim.
func (c *Config) ClaimTransactionalID(replica string) string {
	return c.TransactionalIDPrefix + "-r-" + replica
}

// ReplicaClaim is a held claim on a replica name: it heartbeats in the
// background until Release.
type ReplicaClaim struct {
	sink     *Sink
	name     string
	key      string
	self     claimRecord // this server's identity in its records
	ttl      time.Duration
	interval time.Duration
	onChange func(ReplicaStatus)
	now      func() time.Time

	mu       sync.Mutex
	cl       *kgo.Client // the claim's transactional producer
	lastOK   time.Time   // when the last heartbeat that committed started
	lastErr  error       // the last heartbeat's error (nil after a success)
	lost     error       // set once the name was taken over
	released bool
	held     bool // as last reported to onChange

	cancel    context.CancelFunc // ends the heartbeat goroutine and its requests
	done      chan struct{}
	closeOnce sync.Once
}

// ClaimReplica claims this server's replica name (or, with
// kafka.replica_slots, a free one of its names) and keeps it with
// heartbeats until Release. Call it before Prepare: the pool Prepare
// re-initialises is the claimed name's. It waits up to a previous holder's
// kafka.replica_claim_ttl when that holder stopped without releasing the
// name, and fails with ErrReplicaInUse, naming the holders, when every name
// is held by a live server. onChange (may be nil) hears every change of
// the claim's state, from the heartbeat goroutine.
func (s *Sink) ClaimReplica(ctx context.Context, id ReplicaIdentity, onChange func(ReplicaStatus)) (*ReplicaClaim, error) {
	if s.claim.Load() != nil {
		return nil, errors.New("kafka: ClaimReplica called twice")
	}
	bctx, cancel := context.WithTimeout(ctx, 2*s.cfg.ProduceTimeout)
	err := s.ensureReplicaTopic(bctx)
	cancel()
	if err != nil {
		return nil, err
	}
	session := make([]byte, 12)
	_, _ = rand.Read(session)
	self := claimRecord{Session: hex.EncodeToString(session), Address: id.Address, Host: id.Host, PID: id.PID,
		Started: id.Started.UTC(), TTLMs: s.cfg.ReplicaClaimTTL.Milliseconds()}
	c := &ReplicaClaim{sink: s, self: self, ttl: s.cfg.ReplicaClaimTTL, interval: s.cfg.ReplicaClaimTTL / 3,
		onChange: onChange, now: time.Now, done: make(chan struct{})}
	if err := c.acquire(ctx); err != nil {
		return nil, err
	}
	s.replica = c.name
	s.claim.Store(c)
	c.held = true
	if onChange != nil {
		onChange(ReplicaStatus{Name: c.name, Held: true})
	}
	bg, cancelBeats := context.WithCancel(context.Background())
	c.cancel = cancelBeats
	go c.run(bg)
	return c, nil
}

// acquire finds a name, claims it and makes the first heartbeat.
func (c *ReplicaClaim) acquire(ctx context.Context) error {
	s := c.sink
	l, err := s.openClaimLog()
	if err != nil {
		return err
	}
	defer l.close()
	names := ReplicaNames(s.cfg)
	// Bounded steps that each need Kafka; the waits in between are bounded
	// by the holders' TTLs.
	step := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 2*s.cfg.ProduceTimeout) }
	sctx, cancel := step()
	hwm0, err := l.end(sctx)
	if err == nil {
		err = l.catchUp(sctx, hwm0)
	}
	cancel()
	if err != nil {
		return err
	}
	watchFrom := c.now()
	warned := false
	for lostRaces := 0; ; {
		pick, wait, err := c.choose(l.state, names, hwm0, watchFrom)
		if err != nil {
			return err
		}
		if pick == "" { // some holder may still show it is alive: watch until its TTL is up
			if h := l.state[s.cfg.poolStem(names[0])]; !warned && len(names) == 1 && h != nil {
				warned = true
				s.log.Warn().Str("replica", names[0]).Str("holder", h.rec.describe()).Dur("wait", wait).
					Msg("kafka.replica was held by a server that has not released it; waiting for its heartbeat or for its claim to expire (kafka.replica_claim_ttl)")
			}
			deadline := c.now().Add(wait)
			if err := l.pollUntil(ctx, deadline); err != nil {
				return err
			}
			if c.now().Before(deadline) {
				continue // records arrived: look again
			}
			sctx, cancel := step() // the TTL is up: replay all that was written before it
			end, err := l.end(sctx)
			if err == nil {
				err = l.catchUp(sctx, end)
			}
			cancel()
			if err != nil {
				return err
			}
			continue
		}
		key := s.cfg.poolStem(pick)
		rec := c.self
		rec.Kind, rec.Replica, rec.At, rec.ReplacesOffset = claimKindClaim, pick, c.now().UTC(), -1
		prev := l.state[key]
		if prev != nil {
			rec.Replaces, rec.ReplacesOffset = prev.rec.Session, prev.offset
		}
		sctx, cancel := step()
		off, err := l.write(sctx, key, rec)
		if err == nil {
			err = l.catchUp(sctx, off+1)
		}
		cancel()
		if err != nil {
			return err
		}
		if h := l.state[key]; h == nil || h.rec.Session != c.self.Session {
			// Another server claimed it first; it counts as live now.
			if lostRaces++; lostRaces > len(names) {
				return fmt.Errorf("%w: lost the race for a replica name %d times; retry", ErrReplicaInUse, lostRaces)
			}
			continue
		}
		c.name, c.key = pick, key
		ev := s.log.Info().Str("replica", pick)
		if prev != nil {
			ev = ev.Str("previous_holder", prev.rec.describe())
		}
		ev.Msg("claimed kafka.replica")
		return c.firstBeat(ctx)
	}
}

// choose picks the name to claim now, or how long to keep watching for
// heartbeats, or fails when every name is held by a live server. A holder
// is live when it wrote a record after the watch began (offset ≥ hwm0), and
// expired when its TTL (or this server's, if longer) passed since without
// one. The preference: the name this host held last (a restarted container
// gets its own pool back), then the lowest free one, then the lowest
// expired one once no holder can still show it is alive.
func (c *ReplicaClaim) choose(st claimState, names []string, hwm0 int64, watchFrom time.Time) (string, time.Duration, error) {
	now := c.now()
	var free, expired, own string
	var wait time.Duration
	ownPending := false
	var live []string
	for _, name := range names {
		h := st[c.sink.cfg.poolStem(name)]
		if h == nil {
			if free == "" {
				free = name
			}
			continue
		}
		if h.offset >= hwm0 {
			live = append(live, fmt.Sprintf("%s is held by %s (last heartbeat %s)", name, h.rec.describe(), h.rec.At.UTC().Format(time.RFC3339)))
			continue
		}
		ttl := max(h.rec.ttl(), c.ttl)
		left := watchFrom.Add(ttl).Sub(now)
		mine := c.self.Host != "" && h.rec.Host == c.self.Host
		if left > 0 {
			if wait == 0 || left < wait {
				wait = left
			}
			if mine && own == "" {
				own, ownPending = name, true
			}
			continue
		}
		if mine && own == "" {
			own = name
		}
		if expired == "" {
			expired = name
		}
	}
	switch {
	case own != "" && !ownPending:
		return own, 0, nil
	case own != "":
		return "", watchFrom.Add(max(st[c.sink.cfg.poolStem(own)].rec.ttl(), c.ttl)).Sub(now), nil
	case free != "":
		return free, 0, nil
	case wait > 0:
		return "", wait, nil
	case expired != "":
		return expired, 0, nil
	}
	return "", 0, c.inUse(live)
}

// inUse is the start-up error when every name is held by a live server.
func (c *ReplicaClaim) inUse(live []string) error {
	cfg := c.sink.cfg
	if cfg.ReplicaSlots <= 0 {
		return fmt.Errorf("%w: kafka.replica %q %s; two live servers with one replica name would abort each other's exactly-once transactions. "+
			"Give this server a name of its own: set kafka.replica (FLIGHTSINK_KAFKA_REPLICA), or set kafka.replica_slots "+
			"(FLIGHTSINK_KAFKA_REPLICA_SLOTS) to claim a free %s-<n> automatically",
			ErrReplicaInUse, cfg.Replica, strings.TrimPrefix(strings.Join(live, "; "), cfg.Replica+" "), cfg.Replica)
	}
	sort.Strings(live)
	return fmt.Errorf("%w: every name kafka.replica_slots=%d allows (%s-0 … %s-%d) is held by a live server: %s. "+
		"Raise kafka.replica_slots (FLIGHTSINK_KAFKA_REPLICA_SLOTS), or give this server another kafka.replica (FLIGHTSINK_KAFKA_REPLICA)",
		ErrReplicaInUse, cfg.ReplicaSlots, cfg.Replica, cfg.Replica, cfg.ReplicaSlots-1, strings.Join(live, "; "))
}

// firstBeat initialises the claim producer, which fences whatever producer
// an expired holder still had, and commits the first heartbeat.
func (c *ReplicaClaim) firstBeat(ctx context.Context) error {
	cl, err := c.newProducer()
	if err != nil {
		return err
	}
	c.cl = cl
	start := c.now()
	bctx, cancel := context.WithTimeout(ctx, 2*c.sink.cfg.ProduceTimeout)
	defer cancel()
	if err := c.beatOnce(bctx, cl, claimKindBeat); err != nil {
		cl.Close()
		c.cl = nil
		if isFencedErr(err) {
			h, _ := c.sink.holderNow(bctx, c.key)
			who := "another server"
			if h != nil && h.rec.Session != c.self.Session {
				who = h.rec.describe()
			}
			return fmt.Errorf("%w: kafka.replica %q was taken by %s right after this server claimed it; "+
				"give each server its own kafka.replica (FLIGHTSINK_KAFKA_REPLICA): %v", ErrReplicaInUse, c.name, who, err)
		}
		if errors.Is(err, kerr.InvalidTransactionTimeout) {
			return fmt.Errorf("kafka.replica_claim_ttl: %v is more than the brokers allow (transaction.max.timeout.ms); lower it: %w", c.ttl, err)
		}
		// an outage (a broker of the cluster down) is ErrUnavailable: start-up waits it out
		return markUnavailable(fmt.Errorf("first heartbeat of the claim on kafka.replica %q: %w", c.name, err))
	}
	c.lastOK = start
	return nil
}

// Name is the claimed replica name.
func (c *ReplicaClaim) Name() string { return c.name }

// Err is nil while the claim is held: a heartbeat committed within
// kafka.replica_claim_ttl and no other server took the name. Otherwise it
// wraps ErrReplicaNotHeld and says why.
func (c *ReplicaClaim) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.lost != nil:
		return c.lost
	case c.released:
		return fmt.Errorf("%w: kafka.replica %q was released (shutting down)", ErrReplicaNotHeld, c.name)
	}
	if age := c.now().Sub(c.lastOK); age > c.ttl {
		why := "a heartbeat is under way"
		if c.lastErr != nil {
			why = c.lastErr.Error()
		}
		return fmt.Errorf("%w: no heartbeat of the claim on kafka.replica %q reached Kafka for %v (kafka.replica_claim_ttl %v), so another server may take the name over: %s",
			ErrReplicaNotHeld, c.name, age.Round(time.Millisecond), c.ttl, why)
	}
	return nil
}

// Status is the claim's state now.
func (c *ReplicaClaim) Status() ReplicaStatus {
	err := c.Err()
	return ReplicaStatus{Name: c.name, Held: err == nil, Err: err}
}

// Release stops the heartbeats and, when the claim is still held, writes a
// release record so the next server with this name starts at once. Streams
// must have ended. It is safe to call more than once.
func (c *ReplicaClaim) Release(ctx context.Context) {
	c.closeOnce.Do(func() {
		held := c.Err() == nil
		c.cancel()
		select { // the heartbeat's steps are bounded; this is the backstop
		case <-c.done:
		case <-time.After(c.sink.cfg.ProduceTimeout):
			c.sink.log.Warn().Str("replica", c.name).Msg("the replica heartbeat did not stop in kafka.produce_timeout; closing its client")
		}
		c.mu.Lock()
		c.released = true
		cl := c.cl
		c.cl = nil
		c.mu.Unlock()
		if cl == nil {
			return
		}
		if held {
			rctx, cancel := context.WithTimeout(ctx, c.sink.cfg.ProduceTimeout)
			// kgo does not give up on a record already sent when its
			// context ends, so the wait is bounded here: after a broker
			// restart the release could otherwise hold the shutdown up.
			// cl.Close below ends a produce still waiting.
			beat := make(chan error, 1)
			go func() { beat <- c.beatOnce(rctx, cl, claimKindRelease) }()
			var err error
			select {
			case err = <-beat:
			case <-rctx.Done():
				err = fmt.Errorf("releasing the claim: %w", rctx.Err())
			}
			if err != nil {
				c.sink.log.Warn().Err(err).Str("replica", c.name).
					Msg("could not release the replica claim; the next server with this name waits kafka.replica_claim_ttl")
			} else {
				c.sink.log.Info().Str("replica", c.name).Msg("released kafka.replica")
			}
			cancel()
		}
		cl.Close()
	})
}

// validateReplica checks the replica settings and names the one at fault.
func (c *Config) validateReplica() error {
	if c.ReplicaSlots < 0 || c.ReplicaSlots > 1000 {
		return fmt.Errorf("kafka.replica_slots: %d must be between 0 (kafka.replica is the name) and 1000", c.ReplicaSlots)
	}
	if c.ReplicaClaimTTL < time.Second || c.ReplicaClaimTTL > 5*time.Minute {
		return fmt.Errorf("kafka.replica_claim_ttl: %v must be between 1s and 5m", c.ReplicaClaimTTL)
	}
	if c.ReplicaTopic == "" || !ValidIDPart(c.ReplicaTopic) {
		return fmt.Errorf("kafka.replica_topic: %q must be a valid topic name", c.ReplicaTopic)
	}
	if c.ReplicaTopic == c.ProgressTopic {
		return fmt.Errorf("kafka.replica_topic: %q must differ from kafka.progress_topic", c.ReplicaTopic)
	}
	return nil
}
