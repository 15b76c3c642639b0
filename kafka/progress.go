package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// progressStore reads writers' progress from the progress topic. It keeps,
// per partition, the newest progress of every key read so far and the
// offset to continue from: each read fetches only what was committed since,
// up to the partition's last stable offset, so it sees every transaction
// that completed before it started (the caller fences first).
type progressStore struct {
	sink  *Sink
	topic string

	mu    sync.Mutex
	parts map[int32]*progressPartition
	nPart int
}

type progressPartition struct {
	mu     sync.Mutex
	next   int64
	latest map[string]Progress
}

// partitionFor is where the default partitioner puts a writer's records,
// so reads look in the one partition that holds them.
func (p *progressStore) partitionFor(writerID string) int32 {
	return int32(kgo.StickyKeyPartitioner(nil).ForTopic(p.topic).Partition(&kgo.Record{Key: []byte(writerID)}, p.nPart))
}

func (p *progressStore) partition(n int32) *progressPartition {
	p.mu.Lock()
	defer p.mu.Unlock()
	part, ok := p.parts[n]
	if !ok {
		part = &progressPartition{latest: map[string]Progress{}}
		p.parts[n] = part
	}
	return part
}

// record is the progress record to produce inside a transaction.
func (p *progressStore) record(pr Progress) *kgo.Record {
	v, _ := json.Marshal(pr)
	return &kgo.Record{Topic: p.topic, Key: []byte(pr.WriterID), Value: v, Partition: -1} // -1: partitioned by key
}

// Read returns the writer's committed progress; ok is false when it has
// none. It reads up to the last stable offset at the time of the call.
func (p *progressStore) Read(ctx context.Context, writerID string) (Progress, bool, error) {
	n := p.partitionFor(writerID)
	part := p.partition(n)
	part.mu.Lock()
	defer part.mu.Unlock()
	if err := p.refresh(ctx, n, part); err != nil {
		return Progress{}, false, err
	}
	pr, ok := part.latest[writerID]
	return pr, ok, nil
}

// readPartition returns every writer's progress in partition n, read up to
// its last stable offset at the time of the call.
func (p *progressStore) readPartition(ctx context.Context, n int32) ([]Progress, error) {
	part := p.partition(n)
	part.mu.Lock()
	defer part.mu.Unlock()
	if err := p.refresh(ctx, n, part); err != nil {
		return nil, err
	}
	out := make([]Progress, 0, len(part.latest))
	for _, pr := range part.latest {
		out = append(out, pr)
	}
	return out, nil
}

// refresh reads partition n up to its last stable offset; part.mu is held.
func (p *progressStore) refresh(ctx context.Context, n int32, part *progressPartition) error {
	lso, err := p.lastStableOffset(ctx, n)
	if err != nil {
		return err
	}
	if part.next < lso {
		return p.catchUp(ctx, n, part, lso)
	}
	return nil
}

func (p *progressStore) lastStableOffset(ctx context.Context, n int32) (int64, error) {
	// A transaction completing right now makes the offset unstable for a
	// moment; asking again is the documented answer.
	for {
		offs, err := p.sink.admin.ListCommittedOffsets(ctx, p.topic)
		if err == nil {
			if o, ok := offs.Lookup(p.topic, n); ok {
				if o.Err == nil {
					return o.Offset, nil
				}
				err = o.Err
			} else {
				err = fmt.Errorf("partition %d missing from the answer", n)
			}
		}
		if !errors.Is(err, kerr.UnstableOffsetCommit) && !kerr.IsRetriable(err) || ctx.Err() != nil {
			return 0, p.sink.unavailable(ctx, fmt.Errorf("reading the end of progress topic %q: %w", p.topic, err))
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitReadable waits, at most max, until a read_committed reader sees the
// committed progress record rec: the partition's last stable offset has
// passed it.
func (p *progressStore) waitReadable(ctx context.Context, rec *kgo.Record, max time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, max)
	defer cancel()
	for {
		if lso, err := p.lastStableOffset(ctx, rec.Partition); err != nil || lso > rec.Offset {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// catchUp reads partition n from part.next up to lso, read_committed.
func (p *progressStore) catchUp(ctx context.Context, n int32, part *progressPartition, lso int64) error {
	cl, err := kgo.NewClient(append(p.sink.baseOpts(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{p.topic: {n: kgo.NewOffset().At(part.next)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(), // markers take offsets: they tell when lso is reached
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	for part.next < lso {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return p.sink.unavailable(ctx, fmt.Errorf("reading progress topic %q partition %d: %w", p.topic, n, ctx.Err()))
		}
		var ferr error
		fetches.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil && !kerr.IsRetriable(ferr) {
			return p.sink.unavailable(ctx, fmt.Errorf("reading progress topic %q partition %d: %w", p.topic, n, ferr))
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if r.Offset >= part.next {
				part.next = r.Offset + 1
			}
			if r.Attrs.IsControl() || r.Key == nil {
				return
			}
			var pr Progress
			if r.Value == nil {
				delete(part.latest, string(r.Key))
				return
			}
			if json.Unmarshal(r.Value, &pr) == nil {
				part.latest[string(r.Key)] = pr
			}
		})
	}
	return nil
}

// ensureProgressTopic creates the compacted progress topic when missing.
func (s *Sink) ensureProgressTopic(ctx context.Context) (int, error) {
	info, err := s.describe(ctx, s.cfg.ProgressTopic)
	if errors.Is(err, ErrTopicMissing) {
		compact := "compact"
		if cerr := s.createTopic(ctx, s.cfg.ProgressTopic, s.cfg.ProgressTopicPartitions,
			map[string]*string{"cleanup.policy": &compact}); cerr != nil {
			return 0, fmt.Errorf("kafka.progress_topic: creating %q: %w", s.cfg.ProgressTopic, cerr)
		}
		s.log.Info().Str("topic", s.cfg.ProgressTopic).Msg("created the compacted writer progress topic")
		info, err = s.describeRetry(ctx, s.cfg.ProgressTopic)
	}
	if err != nil {
		return 0, fmt.Errorf("kafka.progress_topic: %w", err)
	}
	return info.Partitions, nil
}

// checkTransactionTimeout refuses a kafka.transaction_timeout above the
// brokers' transaction.max.timeout.ms at start-up, not on the first stream.
func (s *Sink) checkTransactionTimeout(ctx context.Context) error {
	md, err := s.admin.BrokerMetadata(ctx)
	if err != nil {
		return s.unavailable(ctx, fmt.Errorf("reading broker metadata: %w", err))
	}
	rcs, err := s.admin.DescribeBrokerConfigs(ctx, md.Brokers.NodeIDs()...)
	if err != nil {
		return s.unavailable(ctx, fmt.Errorf("reading broker configs: %w", err))
	}
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Key != "transaction.max.timeout.ms" || c.Value == nil {
				continue
			}
			var max int64
			if _, err := fmt.Sscan(*c.Value, &max); err == nil && s.cfg.TransactionTimeout.Milliseconds() > max {
				return fmt.Errorf("kafka.transaction_timeout: %v is above the broker's transaction.max.timeout.ms (%dms); lower it or raise the broker setting",
					s.cfg.TransactionTimeout, max)
			}
		}
	}
	return nil
}
