package kafka

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/flightsink/flightsink/kafka/sinkapi"

	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
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
	creds  *credentials    // kafka.sasl's, resolved at every authentication; nil without SASL
	stop   context.CancelFunc

	pool     *txnPool
	progress *progressStore
	obs      Observer  // metrics; nopObserver until Observe
	registry *Registry // nil: no schema registry configured

	mu     sync.Mutex
	limits map[string]int32 // topic → max.message.bytes, read when a stream opens
	topics *topicCache      // topic → its facts, for TopicInfoMaxAge

	tableStore tableStore // the replay of kafka.tables_topic (tables.go)

	replica string // the name in the pool ids: kafka.replica, or the one ClaimReplica got
	liveMu  sync.Mutex
	live    map[string]int               // transactional ids of open exactly-once streams (markLive)
	claim   atomic.Pointer[ReplicaClaim] // nil: no claim made (library use, tests)
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
	security, err := cfg.tlsOpts()
	if err != nil {
		return nil, err
	}
	creds, err := newCredentials(cfg.SASL, cfg.Brokers, log)
	if err != nil {
		return nil, err
	}
	if creds != nil {
		security = append(security, kgo.SASL(creds.mechanism()))
	}
	extra = append(security, extra...)
	s := &Sink{cfg: cfg, log: log, limits: map[string]int32{}, topics: newTopicCache(), pool: newTxnPool(cfg.MaxExactlyOnceStreams), extra: extra,
		replica: cfg.Replica, creds: creds, obs: nopObserver{}}
	if s.registry, err = newRegistry(cfg.SchemaRegistry); err != nil {
		return nil, err
	}
	s.progress = &progressStore{sink: s, topic: cfg.ProgressTopic, parts: map[int32]*progressPartition{}}
	s.bg, s.stop = context.WithCancel(context.Background())
	creds.start(s.bg)
	// Topic look-ups must see a topic created a moment ago: kgo otherwise
	// answers metadata requests from a cache up to 5 s old.
	s.adminc, err = kgo.NewClient(append(s.baseOpts(), kgo.MetadataMinAge(50*time.Millisecond))...)
	if err != nil {
		s.stop()
		creds.wait()
		return nil, fmt.Errorf("kafka admin client: %w", err)
	}
	s.admin = kadm.NewClient(s.adminc)
	s.shared, err = kgo.NewClient(append(s.producerOpts(), kgo.RequiredAcks(kgo.AllISRAcks()))...)
	if err != nil {
		s.stop()
		creds.wait()
		s.adminc.Close()
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	return s, nil
}

func (s *Sink) baseOpts() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(s.cfg.Brokers...),
		kgo.ClientID(s.cfg.ClientID),
		kgo.WithLogger(kzeroLogger{log: s.log, onErr: s.creds.noteKgoError}),
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
	s.creds.wait()
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

// mapProduceError is the package's mapProduceError, with a failed
// authentication as an *AuthError naming its cause.
func (s *Sink) mapProduceError(err error) error {
	if ae := s.creds.refusal(err); ae != nil {
		return ae
	}
	return mapProduceError(err)
}

// authError is err as an *AuthError when it is an authentication failure,
// or when the deadline passed and an authentication failed since start
// (kgo retried, and what the caller saw is the timeout); nil otherwise.
func (s *Sink) authError(err error, start time.Time) error {
	if ae := s.creds.refusal(err); ae != nil {
		return ae
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrUnavailable) || IsUnavailable(err) {
		if ae := s.creds.failureSince(start); ae != nil {
			return ae
		}
	}
	return nil
}

// unavailable marks an error as ErrUnavailable when the deadline passed or
// it is an outage a retry can outlast (IsUnavailable: a refused connection,
// a coordinator loading, ...).
func (s *Sink) unavailable(ctx context.Context, err error) error {
	if ae := s.creds.refusal(err); ae != nil {
		return ae
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		if dl, ok := ctx.Deadline(); ok {
			if ae := s.creds.failureSince(dl.Add(-s.cfg.ProduceTimeout)); ae != nil {
				return ae
			}
		}
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

// NewPlan builds the record plan of a stream whose batches have schema and
// whose records go to the topic info describes (and, with topic_field,
// others): records are built in chunks of kafka.max_buffered_bytes / 8
// (1 to 16 MiB) and reuse acknowledged chunks' memory, all of a stream's
// chunks together within kafka.max_buffered_bytes and one chunk. register
// is the schema registration (nil without a registry).
func (s *Sink) NewPlan(schema *arrow.Schema, opts *RecordOptions, info TopicInfo, register RegisterFunc) (sinkapi.Plan, error) {
	p, err := NewPlan(schema, opts, info, register)
	if err != nil {
		return nil, err
	}
	buffered := s.cfg.MaxBufferedBytes
	chunk := min(max(buffered/8, 1<<20), 16<<20)
	p.UsePool(NewRecordPool(buffered + chunk))
	p.SetChunkBytes(chunk)
	return p, nil
}

// Limits are the settings a stream checks against.
func (s *Sink) Limits() sinkapi.Limits {
	return sinkapi.Limits{MaxBufferedBytes: s.cfg.MaxBufferedBytes, MaxTransactionRows: s.cfg.MaxTransactionRows,
		TransactionTimeout: s.cfg.TransactionTimeout}
}

// SchemaRegistry is the schema registry, nil without one.
func (s *Sink) SchemaRegistry() sinkapi.Registry {
	if s.registry == nil {
		return nil
	}
	return s.registry
}

// Config returns the sink's configuration.
func (s *Sink) Config() Config { return s.cfg }

// Replica is the replica name in this server's pool ids: the claimed one
// after ClaimReplica, else kafka.replica.
func (s *Sink) Replica() string { return s.replica }
