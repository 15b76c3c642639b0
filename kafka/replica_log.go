package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The replica topic (kafka.replica_topic) is a compacted, single-partition
// log of claims on replica names, keyed by the name's pool stem
// <prefix>-p-<replica>. Every server replays it the same way (claimState),
// so the order Kafka gives the records decides who got a name first.
//
// Record kinds:
//   - claim: "I take this name". Written without a transaction; it wins if
//     the name is free at its place in the log, or if the holder it names
//     (replaces, replaces_offset) has written nothing since the claimer saw
//     it. A claim that does not win changes nothing.
//   - heartbeat: written every kafka.replica_claim_ttl/3 by the holder, in
//     a transaction of the name's claim producer <prefix>-r-<replica>. Only
//     the latest InitProducerID of that transactional id can append one, so
//     a heartbeat proves its session holds the name at that point.
//   - release: the holder's last record on a clean shutdown: the name is
//     free at once.
const (
	claimKindClaim   = "claim"
	claimKindBeat    = "heartbeat"
	claimKindRelease = "release"
)

// claimRecord is the JSON value of a replica topic record. Address, Host,
// PID and Started say who holds a name, for the error another server
// reports when it finds the name in use.
type claimRecord struct {
	Kind    string    `json:"kind"`
	Replica string    `json:"replica"`
	Session string    `json:"session"` // random per server process
	Address string    `json:"address,omitempty"`
	Host    string    `json:"host,omitempty"`
	PID     int       `json:"pid,omitempty"`
	Started time.Time `json:"started"`
	TTLMs   int64     `json:"ttl_ms"` // the writer's kafka.replica_claim_ttl
	At      time.Time `json:"at"`     // when written, by the writer's clock
	// Replaces and ReplacesOffset (claims only) name the holder the claimer
	// found expired and the offset of that holder's last record it saw;
	// ReplacesOffset -1: the name was free.
	Replaces       string `json:"replaces,omitempty"`
	ReplacesOffset int64  `json:"replaces_offset"`
	// TxnIDs (heartbeats only) are the transactional ids the holder's open
	// exactly-once streams use: transaction-abort refuses them (Sink.liveOn).
	TxnIDs []string `json:"txn_ids,omitempty"`
}

// lists reports whether the record lists txnID in use.
func (r claimRecord) lists(txnID string) bool {
	for _, id := range r.TxnIDs {
		if id == txnID {
			return true
		}
	}
	return false
}

func (r claimRecord) ttl() time.Duration { return time.Duration(r.TTLMs) * time.Millisecond }

// describe names the holder for an error message or a log line.
func (r claimRecord) describe() string {
	s := "a flightsink"
	if r.Address != "" {
		s += " at " + r.Address
	}
	s += fmt.Sprintf(" (host %s, pid %d), started %s", r.Host, r.PID, r.Started.UTC().Format(time.RFC3339))
	return s
}

// claimHolder is a name's holder as the replay stands: its latest record
// and that record's offset.
type claimHolder struct {
	rec    claimRecord
	offset int64
}

// claimState is the replay of the replica topic: key → holder (absent: free).
type claimState map[string]*claimHolder

// apply replays one record at offset. The rules are the whole protocol; see
// the comment at the top of this file.
func (st claimState) apply(key string, rec claimRecord, offset int64) {
	h := st[key]
	switch rec.Kind {
	case claimKindClaim:
		if h == nil || (h.rec.Session == rec.Replaces && h.offset == rec.ReplacesOffset) {
			st[key] = &claimHolder{rec: rec, offset: offset}
		}
	case claimKindBeat:
		st[key] = &claimHolder{rec: rec, offset: offset}
	case claimKindRelease:
		if h != nil && h.rec.Session == rec.Session {
			delete(st, key)
		}
	}
}

// claimLog reads (and appends claims to) partition 0 of the replica topic,
// read_uncommitted: a heartbeat shows the holder is alive whether or not its
// transaction commits, and a transaction a crashed holder left open holds
// nothing back.
type claimLog struct {
	s     *Sink
	cl    *kgo.Client
	topic string
	next  int64 // the offset after the last record read
	state claimState
}

func (s *Sink) openClaimLog() (*claimLog, error) {
	cl, err := kgo.NewClient(append(s.baseOpts(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{s.cfg.ReplicaTopic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
		kgo.KeepControlRecords(), // every offset arrives, so reaching an end offset is visible
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MetadataMinAge(100*time.Millisecond),
	)...)
	if err != nil {
		return nil, fmt.Errorf("kafka.replica_topic: reader: %w", err)
	}
	return &claimLog{s: s, cl: cl, topic: s.cfg.ReplicaTopic, state: claimState{}}, nil
}

func (l *claimLog) close() {
	if l.cl != nil {
		l.cl.Close()
	}
}

// end is partition 0's high watermark: every record appended before the
// call lies below it.
func (l *claimLog) end(ctx context.Context) (int64, error) {
	ends, err := l.s.admin.ListEndOffsets(ctx, l.topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, l.s.unavailable(ctx, fmt.Errorf("kafka.replica_topic: end offset of %q: %w", l.topic, err))
	}
	o, ok := ends.Lookup(l.topic, 0)
	if !ok {
		return 0, fmt.Errorf("kafka.replica_topic: %q has no partition 0", l.topic)
	}
	return o.Offset, nil
}

// catchUp reads until every record below target is replayed.
func (l *claimLog) catchUp(ctx context.Context, target int64) error {
	if l.next < target {
		starts, err := l.s.admin.ListStartOffsets(ctx, l.topic)
		if err == nil {
			if o, ok := starts.Lookup(l.topic, 0); ok && o.Err == nil && o.Offset >= target {
				l.next = target // nothing left to read below target
			}
		}
	}
	for l.next < target {
		if err := l.poll(ctx); err != nil {
			return l.s.unavailable(ctx, fmt.Errorf("kafka.replica_topic: reading %q up to offset %d (at %d): %w", l.topic, target, l.next, err))
		}
	}
	return nil
}

// pollUntil replays what arrives until a fetch brings records or deadline
// passes.
func (l *claimLog) pollUntil(ctx context.Context, deadline time.Time) error {
	pctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	for pctx.Err() == nil {
		before := l.next
		if err := l.poll(pctx); err != nil && pctx.Err() == nil {
			return err
		}
		if l.next != before {
			return nil
		}
	}
	return ctx.Err()
}

// poll replays one fetch. Errors other than ctx's are retried by kgo and
// not fatal here; ctx bounds the wait.
func (l *claimLog) poll(ctx context.Context) error {
	fs := l.cl.PollFetches(ctx)
	if fs.IsClientClosed() {
		return kgo.ErrClientClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fs.EachRecord(func(r *kgo.Record) {
		if r.Offset+1 > l.next {
			l.next = r.Offset + 1
		}
		if r.Attrs.IsControl() || r.Value == nil {
			return
		}
		var rec claimRecord
		if json.Unmarshal(r.Value, &rec) == nil {
			l.state.apply(string(r.Key), rec, r.Offset)
		}
	})
	return nil
}

// write appends a claim record (acks=all, idempotent) and returns its offset.
func (l *claimLog) write(ctx context.Context, key string, rec claimRecord) (int64, error) {
	v, err := json.Marshal(rec)
	if err != nil {
		return 0, err
	}
	r, err := l.cl.ProduceSync(ctx, &kgo.Record{Topic: l.topic, Partition: 0, Key: []byte(key), Value: v}).First()
	if err != nil {
		return 0, l.s.unavailable(ctx, fmt.Errorf("kafka.replica_topic: writing the claim on %q: %w", rec.Replica, err))
	}
	return r.Offset, nil
}

// holderNow reads the whole replica topic and returns key's holder (nil:
// free).
func (s *Sink) holderNow(ctx context.Context, key string) (*claimHolder, error) {
	l, err := s.openClaimLog()
	if err != nil {
		return nil, err
	}
	defer l.close()
	end, err := l.end(ctx)
	if err != nil {
		return nil, err
	}
	if err := l.catchUp(ctx, end); err != nil {
		return nil, err
	}
	return l.state[key], nil
}

// ensureReplicaTopic creates the compacted single-partition replica topic
// when missing. Records younger than ten minutes (twice the longest
// kafka.replica_claim_ttl) are never compacted, so every server replays the
// recent claims in full, and a start-up reads little more than that.
func (s *Sink) ensureReplicaTopic(ctx context.Context) error {
	_, err := s.describe(ctx, s.cfg.ReplicaTopic)
	if errors.Is(err, ErrTopicMissing) {
		compact, tenMinutes := "compact", "600000"
		resp, cerr := s.admin.CreateTopic(ctx, 1, -1, map[string]*string{
			"cleanup.policy":        &compact,
			"segment.ms":            &tenMinutes,
			"min.compaction.lag.ms": &tenMinutes,
		}, s.cfg.ReplicaTopic)
		if cerr == nil {
			cerr = resp.Err
		}
		if cerr != nil && !errors.Is(cerr, kerr.TopicAlreadyExists) {
			return fmt.Errorf("kafka.replica_topic: creating %q: %w", s.cfg.ReplicaTopic, cerr)
		}
		s.log.Info().Str("topic", s.cfg.ReplicaTopic).Msg("created the compacted replica claim topic")
		_, err = s.describeRetry(ctx, s.cfg.ReplicaTopic)
	}
	if err != nil {
		return fmt.Errorf("kafka.replica_topic: %w", err)
	}
	return nil
}
