package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flightsink/flightsink/kafka/sinkapi"
)

// The tables topic (kafka.tables_topic) holds the tables declared through
// Flight SQL: one compacted partition, keyed by the table's topic, whose
// latest record is its declaration (a null value forgets it). Every replica
// reads it up to its end before answering, so a declaration made on one
// replica is seen by the next statement on any other; a restart replays it.
// Two replicas declaring the same table at once: the later record wins.

// tableStore is this server's replay of the tables topic.
type tableStore struct {
	mu     sync.Mutex
	next   int64 // the offset to read from
	tables map[string]sinkapi.Table
}

// Tables returns every declared table by topic, read up to the end of the
// tables topic (none while it does not exist).
func (s *Sink) Tables(ctx context.Context) (map[string]sinkapi.Table, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProduceTimeout)
	defer cancel()
	st := &s.tableStore
	st.mu.Lock()
	defer st.mu.Unlock()
	end, err := s.tablesEnd(ctx)
	if err != nil {
		return nil, err
	}
	if st.tables == nil {
		st.tables = map[string]sinkapi.Table{}
	}
	if st.next < end {
		if err := s.readTables(ctx, st, end); err != nil {
			return nil, err
		}
	}
	return maps.Clone(st.tables), nil
}

// DeclareTable stores a table's declaration (creating the tables topic on
// the first one); the next Tables of any replica sees it.
func (s *Sink) DeclareTable(ctx context.Context, t sinkapi.Table) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProduceTimeout)
	defer cancel()
	if err := s.ensureTablesTopic(ctx); err != nil {
		return err
	}
	v, err := json.Marshal(t)
	if err != nil {
		return err
	}
	rec := &kgo.Record{Topic: s.cfg.TablesTopic, Partition: 0, Key: []byte(t.Topic), Value: v}
	if err := s.shared.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return s.unavailable(ctx, fmt.Errorf("kafka.tables_topic: storing the declaration of %q: %w", t.Topic, err))
	}
	return nil
}

// CreateTopicWith creates topic with the given partition count (0: the
// broker's default); a topic that exists already is no error.
func (s *Sink) CreateTopicWith(ctx context.Context, topic string, partitions int32) error {
	if partitions <= 0 {
		return s.CreateTopic(ctx, topic)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProduceTimeout)
	defer cancel()
	if err := s.createTopic(ctx, topic, partitions, nil); err != nil {
		return s.unavailable(ctx, fmt.Errorf("creating topic %q: %w", topic, err))
	}
	_, err := s.describeRetry(ctx, topic)
	return err
}

// ensureTablesTopic creates the compacted single-partition tables topic
// when missing.
func (s *Sink) ensureTablesTopic(ctx context.Context) error {
	_, err := s.describe(ctx, s.cfg.TablesTopic)
	if !errors.Is(err, ErrTopicMissing) {
		return err
	}
	compact := "compact"
	if err := s.createTopic(ctx, s.cfg.TablesTopic, 1, map[string]*string{"cleanup.policy": &compact}); err != nil {
		return s.unavailable(ctx, fmt.Errorf("kafka.tables_topic: creating %q: %w", s.cfg.TablesTopic, err))
	}
	s.log.Info().Str("topic", s.cfg.TablesTopic).Msg("created the compacted tables topic")
	_, err = s.describeRetry(ctx, s.cfg.TablesTopic)
	return err
}

// tablesEnd is the end offset of the tables topic's partition; 0 while the
// topic does not exist.
func (s *Sink) tablesEnd(ctx context.Context) (int64, error) {
	for {
		offs, err := s.admin.ListEndOffsets(ctx, s.cfg.TablesTopic)
		if err == nil {
			o, ok := offs.Lookup(s.cfg.TablesTopic, 0)
			switch {
			case !ok || errors.Is(o.Err, kerr.UnknownTopicOrPartition):
				return 0, nil
			case o.Err == nil:
				return o.Offset, nil
			}
			err = o.Err
		}
		if !kerr.IsRetriable(err) || ctx.Err() != nil {
			return 0, s.unavailable(ctx, fmt.Errorf("kafka.tables_topic: reading the end of %q: %w", s.cfg.TablesTopic, err))
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// readTables replays the tables topic from st.next up to end.
func (s *Sink) readTables(ctx context.Context, st *tableStore, end int64) error {
	topic := s.cfg.TablesTopic
	cl, err := kgo.NewClient(append(s.baseOpts(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(st.next)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	for st.next < end {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return s.unavailable(ctx, fmt.Errorf("kafka.tables_topic: reading %q: %w", topic, ctx.Err()))
		}
		var ferr error
		fetches.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil && !kerr.IsRetriable(ferr) {
			return s.unavailable(ctx, fmt.Errorf("kafka.tables_topic: reading %q: %w", topic, ferr))
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if r.Offset >= st.next {
				st.next = r.Offset + 1
			}
			if r.Attrs.IsControl() || r.Key == nil {
				return
			}
			if r.Value == nil {
				delete(st.tables, string(r.Key))
				return
			}
			var t sinkapi.Table
			if err := json.Unmarshal(r.Value, &t); err != nil || t.Topic != string(r.Key) {
				s.log.Warn().Str("topic", topic).Int64("offset", r.Offset).Msg("ignoring a malformed table declaration")
				return
			}
			st.tables[t.Topic] = t
		})
	}
	return nil
}
