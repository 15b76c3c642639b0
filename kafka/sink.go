package kafka

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Sink owns flightsink's connections to one Kafka cluster: the shared
// idempotent producer of at-least-once streams and an admin client for topic
// look-ups. It is safe for concurrent use by many streams.
type Sink struct {
	cfg    Config
	log    zerolog.Logger
	shared *kgo.Client
	admin  *kadm.Client
	adminc *kgo.Client
	bg     context.Context // lives as long as the sink: the context of shared-producer records
	extra  []kgo.Opt       // security and caller options, for every client the sink makes
	stop   context.CancelFunc

	pool     *txnPool
	progress *progressStore
	obs      Observer  // metrics; nopObserver until Observe
	registry *Registry // nil: no schema registry configured

	mu     sync.Mutex
	limits map[string]int32 // topic → max.message.bytes, read when a stream opens

	replica string                       // the name in the pool ids: kafka.replica, or the one ClaimReplica got
	claim   atomic.Pointer[ReplicaClaim] // nil: no claim made (library use, tests)
}

// TopicInfo is what a stream needs to know about its topic.
type TopicInfo struct {
	Topic      string
	Partitions int
	// MaxMessageBytes is the topic's max.message.bytes: the largest record
	// batch the broker accepts for it. Rows whose record would exceed it are
	// rejected before they are produced.
	MaxMessageBytes int32
	// Compacted is true when cleanup.policy includes compact: the broker
	// rejects records without a key, failing the whole producer batch.
	Compacted bool
	// CreateTime is true when message.timestamp.type is CreateTime: the
	// broker then rejects timestamps outside the window below, failing the
	// whole producer batch, so rows are checked first.
	CreateTime bool
	// TimestampBeforeMax and TimestampAfterMax bound how far a record
	// timestamp may lie before or after the broker's clock
	// (message.timestamp.before.max.ms / after.max.ms; Kafka 4's default
	// after-limit is one hour).
	TimestampBeforeMax, TimestampAfterMax time.Duration
}

// NewSink connects to the cluster in cfg. Extra kgo options (tests, TLS)
// are appended to every client it makes.
func NewSink(cfg Config, log zerolog.Logger, extra ...kgo.Opt) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg, props, err := cfg.ApplyClientConfig()
	if err != nil {
		return nil, err
	}
	extra = append(props, extra...)
	security, err := cfg.securityOpts()
	if err != nil {
		return nil, err
	}
	extra = append(security, extra...)
	s := &Sink{cfg: cfg, log: log, limits: map[string]int32{}, pool: newTxnPool(cfg.MaxExactlyOnceStreams), extra: extra,
		replica: cfg.Replica, obs: nopObserver{}}
	if s.registry, err = newRegistry(cfg.SchemaRegistry); err != nil {
		return nil, err
	}
	s.progress = &progressStore{sink: s, topic: cfg.ProgressTopic, parts: map[int32]*progressPartition{}}
	s.bg, s.stop = context.WithCancel(context.Background())
	// Topic look-ups must see a topic created a moment ago: kgo otherwise
	// answers metadata requests from a cache up to 5 s old.
	s.adminc, err = kgo.NewClient(append(s.baseOpts(), kgo.MetadataMinAge(50*time.Millisecond))...)
	if err != nil {
		return nil, fmt.Errorf("kafka admin client: %w", err)
	}
	s.admin = kadm.NewClient(s.adminc)
	s.shared, err = kgo.NewClient(append(s.producerOpts(), kgo.RequiredAcks(kgo.AllISRAcks()))...)
	if err != nil {
		s.stop()
		s.adminc.Close()
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	return s, nil
}

func (s *Sink) baseOpts() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(s.cfg.Brokers...),
		kgo.ClientID(s.cfg.ClientID),
		kgo.WithLogger(kzeroLogger{s.log}),
	}
	return append(opts, s.extra...)
}

// producerOpts are the options every producer shares: batching,
// compression and the per-topic batch cap. Buffering limits and timeouts
// are each writer's own (see inflight): kgo's record timeout counts from the
// record's timestamp, which comes from client data, and kgo's buffer limit
// would block one stream on another's records.
func (s *Sink) producerOpts() []kgo.Opt {
	codec, _ := s.cfg.CompressionCodec()
	return append(s.baseOpts(),
		kgo.ProducerLinger(s.cfg.Linger),
		kgo.ProducerBatchCompression(codec),
		kgo.MaxBufferedRecords(1<<30),
		kgo.ProducerBatchMaxBytesFn(s.batchMaxBytes),
		kgo.RecordPartitioner(newExplicitPartitioner()),
		// Right after a commit a produce may meet CONCURRENT_TRANSACTIONS
		// while the broker writes the markers; kgo retries after a metadata
		// refresh, which it otherwise allows only every 5 s.
		kgo.MetadataMinAge(100*time.Millisecond),
	)
}

// batchMaxBytes keeps producer batches under the topic's max.message.bytes,
// so one large row never fails a whole batch of valid ones.
func (s *Sink) batchMaxBytes(topic string) int32 {
	max := s.cfg.BatchMaxBytes
	s.mu.Lock()
	limit, ok := s.limits[topic]
	s.mu.Unlock()
	if ok && limit < max {
		max = limit
	}
	if max < 512 {
		max = 512
	}
	return max
}

// Prepare readies the sink before the first stream: Kafka answers, the
// transaction timeout is one the brokers accept, the progress topic exists,
// and the pool's transactional ids are re-initialised (aborting what a
// crashed predecessor with this kafka.replica left open).
func (s *Sink) Prepare(ctx context.Context) error {
	if err := s.Ping(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*s.cfg.ProduceTimeout)
	defer cancel()
	if err := s.checkTransactionTimeout(ctx); err != nil {
		return err
	}
	n, err := s.ensureProgressTopic(ctx)
	if err != nil {
		return err
	}
	s.progress.nPart = n
	start := time.Now()
	if err := s.resetPool(ctx); err != nil {
		return err
	}
	s.log.Debug().Dur("took", time.Since(start)).Int("ids", s.cfg.MaxExactlyOnceStreams).Msg("re-initialised the transactional-id pool")
	return nil
}

// Close releases the replica claim (if any) and closes every client the
// sink made. Streams must have ended.
func (s *Sink) Close() {
	if c := s.claim.Load(); c != nil {
		c.Release(context.Background())
	}
	s.stop()
	s.shared.Close()
	s.adminc.Close()
	s.pool.mu.Lock()
	for i, cl := range s.pool.clients {
		if cl != nil {
			cl.Close()
			s.pool.clients[i] = nil
		}
	}
	s.pool.mu.Unlock()
}

// Ping checks that the cluster answers within kafka.produce_timeout.
func (s *Sink) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProduceTimeout)
	defer cancel()
	// ApiVersions goes to a broker every time; a metadata request could be
	// answered from kgo's cache while every broker is down.
	if _, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, s.adminc); err != nil {
		return fmt.Errorf("%w: no broker of %v answered within kafka.produce_timeout (%v): %w",
			ErrUnavailable, s.cfg.Brokers, s.cfg.ProduceTimeout, err)
	}
	return nil
}

// Topic looks the topic up (creating it when kafka.create_topics is on) and
// reads its max.message.bytes. Errors wrap ErrTopicMissing or ErrUnavailable.
func (s *Sink) Topic(ctx context.Context, topic string) (TopicInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProduceTimeout)
	defer cancel()
	info, err := s.describe(ctx, topic)
	if errors.Is(err, ErrTopicMissing) && s.cfg.CreateTopics {
		if cerr := s.createTopic(ctx, topic, -1, nil); cerr != nil {
			return TopicInfo{}, s.unavailable(ctx, fmt.Errorf("creating topic %q (kafka.create_topics is on): %w", topic, cerr))
		}
		s.log.Info().Str("topic", topic).Msg("created topic (kafka.create_topics is on)")
		info, err = s.describeRetry(ctx, topic)
	}
	if err != nil {
		return TopicInfo{}, err
	}
	s.mu.Lock()
	s.limits[topic] = info.MaxMessageBytes
	s.mu.Unlock()
	return info, nil
}

// describeRetry waits for a just-created topic to show up in metadata.
func (s *Sink) describeRetry(ctx context.Context, topic string) (TopicInfo, error) {
	for {
		info, err := s.describe(ctx, topic)
		if !errors.Is(err, ErrTopicMissing) || ctx.Err() != nil {
			return info, err
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *Sink) describe(ctx context.Context, topic string) (TopicInfo, error) {
	topics, err := s.admin.ListTopics(ctx, topic)
	if err != nil {
		return TopicInfo{}, s.unavailable(ctx, fmt.Errorf("looking up topic %q: %w", topic, err))
	}
	d, ok := topics[topic]
	if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
		return TopicInfo{}, fmt.Errorf("%w: topic %q does not exist; create it first, or set kafka.create_topics: true", ErrTopicMissing, topic)
	}
	if d.Err != nil {
		return TopicInfo{}, s.unavailable(ctx, fmt.Errorf("looking up topic %q: %w", topic, d.Err))
	}
	info := TopicInfo{Topic: topic, Partitions: len(d.Partitions), MaxMessageBytes: 1048588, CreateTime: true,
		TimestampBeforeMax: math.MaxInt64, TimestampAfterMax: math.MaxInt64}
	rcs, err := s.admin.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return TopicInfo{}, s.unavailable(ctx, fmt.Errorf("reading config of topic %q: %w", topic, err))
	}
	var difference time.Duration = -1
	before, after := false, false
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Value == nil {
				continue
			}
			v := *c.Value
			switch c.Key {
			case "max.message.bytes":
				if n, err := strconv.ParseInt(v, 10, 32); err == nil && n > 0 {
					info.MaxMessageBytes = int32(n)
				}
			case "cleanup.policy":
				info.Compacted = strings.Contains(v, "compact")
			case "message.timestamp.type":
				info.CreateTime = v != "LogAppendTime"
			case "message.timestamp.before.max.ms":
				info.TimestampBeforeMax, before = parseMillis(v), true
			case "message.timestamp.after.max.ms":
				info.TimestampAfterMax, after = parseMillis(v), true
			case "message.timestamp.difference.max.ms": // before Kafka 3.6
				difference = parseMillis(v)
			}
		}
	}
	if difference >= 0 && !before && !after {
		info.TimestampBeforeMax, info.TimestampAfterMax = difference, difference
	}
	return info, nil
}

// parseMillis reads a millisecond setting as a duration, saturating.
func parseMillis(v string) time.Duration {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return math.MaxInt64
	}
	if n > math.MaxInt64/int64(time.Millisecond) {
		return math.MaxInt64
	}
	return time.Duration(n) * time.Millisecond
}

// unavailable marks an error as ErrUnavailable when the deadline passed or
// it is an outage a retry can outlast (IsUnavailable: a refused connection,
// a coordinator loading, ...).
func (s *Sink) unavailable(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: %v (no answer within kafka.produce_timeout=%v)", ErrUnavailable, err, s.cfg.ProduceTimeout)
	}
	return markUnavailable(err)
}

// ListTopics lists the cluster's topics, without internal ones and without
// the topics the server owns (OwnedTopics).
func (s *Sink) ListTopics(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProduceTimeout)
	defer cancel()
	topics, err := s.admin.ListTopics(ctx)
	if err != nil {
		return nil, s.unavailable(ctx, fmt.Errorf("listing topics: %w", err))
	}
	var out []string
	owned := s.OwnedTopics()
	for _, name := range topics.Names() {
		if _, ok := owned[name]; !ok {
			out = append(out, name)
		}
	}
	return out, nil
}

// CreateTopic creates a topic with the broker's default partitions and
// replication; a topic that exists already is no error.
func (s *Sink) CreateTopic(ctx context.Context, topic string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProduceTimeout)
	defer cancel()
	if err := s.createTopic(ctx, topic, -1, nil); err != nil {
		return s.unavailable(ctx, fmt.Errorf("creating topic %q: %w", topic, err))
	}
	_, err := s.describeRetry(ctx, topic)
	return err
}

// createTopic creates topic with the broker's default replication (and
// partitions, for -1); a topic that exists already is no error.
func (s *Sink) createTopic(ctx context.Context, topic string, partitions int32, configs map[string]*string) error {
	resp, err := s.admin.CreateTopic(ctx, partitions, -1, configs, topic)
	if err == nil {
		err = resp.Err
	}
	if errors.Is(err, kerr.TopicAlreadyExists) {
		return nil
	}
	return err
}

// CreateTopicsAllowed reports kafka.create_topics.
func (s *Sink) CreateTopicsAllowed() bool { return s.cfg.CreateTopics }

// Config returns the sink's configuration.
func (s *Sink) Config() Config { return s.cfg }

// Replica is the replica name in this server's pool ids: the claimed one
// after ClaimReplica, else kafka.replica.
func (s *Sink) Replica() string { return s.replica }

// Lookup is Topic without creating a missing topic.
func (s *Sink) Lookup(ctx context.Context, topic string) (TopicInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProduceTimeout)
	defer cancel()
	info, err := s.describe(ctx, topic)
	if err != nil {
		return TopicInfo{}, err
	}
	s.mu.Lock()
	s.limits[topic] = info.MaxMessageBytes
	s.mu.Unlock()
	return info, nil
}
