// Package kafka is flightsink's side of Kafka: the producers that streams
// write through (a shared idempotent one for at-least-once, one
// transactional producer per stream for exactly-once), topic look-ups, and the
// mapping of Kafka errors to the typed errors the Flight service reports.
package kafka

import (
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Config is the Kafka side of flightsink's configuration. The zero value is
// not usable; start from DefaultConfig.
type Config struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string `yaml:"brokers"`
	// ClientID is sent to Kafka with every request (broker logs, quotas).
	ClientID string `yaml:"client_id"`
	// Linger is how long a producer waits to fill a batch before sending it.
	Linger time.Duration `yaml:"linger"`
	// BatchMaxBytes caps one producer batch; it is further capped per topic
	// by the topic's max.message.bytes, read when a stream opens.
	BatchMaxBytes int32 `yaml:"batch_max_bytes"`
	// Compression is the producer batch compression: none, gzip, snappy, lz4 or
	// zstd. snappy by default: on JSON values it compresses within 5-8% of lz4
	// at about twice the speed in Go (bench/README.md), and the server's CPU is
	// what bounds its throughput.
	Compression string `yaml:"compression"`
	// MaxBufferedBytes bounds what one producer holds unacknowledged; when it
	// is reached, writing blocks, which back-pressures the Flight stream.
	MaxBufferedBytes int `yaml:"max_buffered_bytes"`
	// ProduceTimeout is how long a record may wait for Kafka before the
	// stream fails with Unavailable (also the bound for topic look-ups).
	ProduceTimeout time.Duration `yaml:"produce_timeout"`
	// StartupTimeout bounds how long the binary waits at start-up for
	// Kafka to answer (trying again with backoff, logging each try, while
	// /readyz reports not ready) before it gives up; 0 tries once.
	StartupTimeout time.Duration `yaml:"startup_timeout"`
	// CreateTopics creates a missing topic with the broker's default partition
	// count and replication factor instead of failing with NotFound.
	CreateTopics bool `yaml:"create_topics"`
	// TransactionalIDPrefix starts every transactional.id flightsink uses.
	TransactionalIDPrefix string `yaml:"transactional_id_prefix"`
	// Replica names this server instance inside the transactional-id pool.
	// It must be unique among live replicas and stable across restarts (a
	// StatefulSet ordinal, a host name): two live servers with one replica
	// name abort each other's transactions, so a server claims its name in
	// ReplicaTopic before it serves and refuses to start while another live
	// server holds it (replica.go).
	Replica string `yaml:"replica"`
	// ReplicaSlots, when above 0, makes Replica a base name: the server
	// claims the first free name of <replica>-0 … <replica>-(slots-1), so
	// identical containers (docker compose --scale) need no per-replica
	// setting and the transactional-id pool stays bounded.
	ReplicaSlots int `yaml:"replica_slots"`
	// ReplicaClaimTTL bounds how long the claim of a server that stopped
	// without releasing it (a crash, SIGKILL) keeps its name from the next
	// server: it heartbeats every TTL/3, and a newcomer that sees no
	// heartbeat for one TTL takes the name over.
	ReplicaClaimTTL time.Duration `yaml:"replica_claim_ttl"`
	// ReplicaTopic is the compacted single-partition topic of replica
	// claims; created at start-up when missing.
	ReplicaTopic string `yaml:"replica_topic"`
	// TransactionTimeout is the Kafka transaction timeout; checkpoints must
	// come more often than this.
	TransactionTimeout time.Duration `yaml:"transaction_timeout"`
	// MaxExactlyOnceStreams is the number of anonymous exactly-once streams
	// that may be open at once: the size of the transactional-id pool
	// <prefix>-p-<replica>-<n>. The binary sets it from flight.max_streams.
	MaxExactlyOnceStreams int `yaml:"-"`
	// ProgressTopic is the compacted topic where named writers' progress is
	// committed inside their transactions; created at start-up if missing.
	ProgressTopic string `yaml:"progress_topic"`
	// ProgressTopicPartitions is its partition count when it is created.
	ProgressTopicPartitions int32 `yaml:"progress_topic_partitions"`
	// TablesTopic is the compacted single-partition topic of the tables
	// declared through Flight SQL (CREATE TABLE); created on the first
	// declaration.
	TablesTopic string `yaml:"tables_topic"`
	// MaxTransactionRows bounds the rows of one open transaction (the rows
	// of an exactly-once stream since its last checkpoint); more is
	// ResourceExhausted. 0 means no limit.
	MaxTransactionRows int64 `yaml:"max_transaction_rows"`
	// TLS to the brokers.
	TLS TLSConfig `yaml:"tls"`
	// SASL authentication to the brokers.
	SASL SASLConfig `yaml:"sasl"`
	// SchemaRegistry is where streams in the formats avro, protobuf and
	// json_schema (values or keys) register their schemas.
	SchemaRegistry RegistryConfig `yaml:"schema_registry"`
	// ClientConfig are producer properties by their standard Java or
	// librdkafka names (linger.ms, security.protocol, client.rack, ...),
	// mapped onto the settings above or franz-go options; see
	// ApplyClientConfig and docs/kafka-properties.md.
	ClientConfig map[string]string `yaml:"client_config"`
}

// DefaultConfig returns the documented defaults (see config.yaml).
func DefaultConfig() Config {
	return Config{
		Brokers:                 []string{"127.0.0.1:9092"},
		ClientID:                "flightsink",
		Linger:                  5 * time.Millisecond,
		BatchMaxBytes:           1_000_000,
		Compression:             "snappy",
		MaxBufferedBytes:        64 << 20,
		ProduceTimeout:          30 * time.Second,
		StartupTimeout:          2 * time.Minute,
		CreateTopics:            false,
		TransactionalIDPrefix:   "flightsink",
		Replica:                 "0",
		ReplicaClaimTTL:         10 * time.Second,
		ReplicaTopic:            "flightsink-replicas",
		TransactionTimeout:      60 * time.Second,
		MaxExactlyOnceStreams:   64,
		ProgressTopic:           "flightsink-writers",
		ProgressTopicPartitions: 8,
		TablesTopic:             "flightsink-tables",
		MaxTransactionRows:      50_000_000,
	}
}

// Validate checks every setting, kafka.client_config's properties applied,
// and names the one at fault.
func (c *Config) Validate() error {
	applied, _, err := c.ApplyClientConfig()
	if err != nil {
		return err
	}
	return applied.validate()
}

func (c *Config) validate() error {
	if len(c.Brokers) == 0 {
		return fmt.Errorf("kafka.brokers: at least one broker is required")
	}
	for _, b := range c.Brokers {
		if !strings.Contains(b, ":") {
			return fmt.Errorf("kafka.brokers: %q must be host:port", b)
		}
	}
	if c.Linger < 0 {
		return fmt.Errorf("kafka.linger: %v must not be negative", c.Linger)
	}
	if c.BatchMaxBytes < 1024 || c.BatchMaxBytes > 1<<30 {
		return fmt.Errorf("kafka.batch_max_bytes: %d must be between 1024 and 1073741824", c.BatchMaxBytes)
	}
	if _, err := c.CompressionCodec(); err != nil {
		return err
	}
	if c.MaxBufferedBytes < int(c.BatchMaxBytes) {
		return fmt.Errorf("kafka.max_buffered_bytes: %d must be at least kafka.batch_max_bytes (%d)", c.MaxBufferedBytes, c.BatchMaxBytes)
	}
	if c.ProduceTimeout < time.Second {
		return fmt.Errorf("kafka.produce_timeout: %v must be at least 1s", c.ProduceTimeout)
	}
	if c.StartupTimeout < 0 {
		return fmt.Errorf("kafka.startup_timeout: %v must not be negative (0: try once)", c.StartupTimeout)
	}
	if c.TransactionalIDPrefix == "" || !ValidIDPart(c.TransactionalIDPrefix) {
		return fmt.Errorf("kafka.transactional_id_prefix: %q must be non-empty [A-Za-z0-9._-]", c.TransactionalIDPrefix)
	}
	if c.Replica == "" || !ValidIDPart(c.Replica) {
		return fmt.Errorf("kafka.replica: %q must be non-empty [A-Za-z0-9._-], unique and stable per server instance", c.Replica)
	}
	if err := c.validateReplica(); err != nil {
		return err
	}
	if c.MaxExactlyOnceStreams < 1 || c.MaxExactlyOnceStreams > 100_000 {
		return fmt.Errorf("flight.max_streams: %d must be between 1 and 100000 (it sizes the exactly-once producer pool)", c.MaxExactlyOnceStreams)
	}
	if c.ProgressTopic == "" || !ValidIDPart(c.ProgressTopic) {
		return fmt.Errorf("kafka.progress_topic: %q must be a valid topic name", c.ProgressTopic)
	}
	if c.TablesTopic == "" || !ValidIDPart(c.TablesTopic) {
		return fmt.Errorf("kafka.tables_topic: %q must be a valid topic name", c.TablesTopic)
	}
	if c.ProgressTopicPartitions < 1 {
		return fmt.Errorf("kafka.progress_topic_partitions: %d must be at least 1", c.ProgressTopicPartitions)
	}
	if _, err := c.tlsOpts(); err != nil {
		return err
	}
	if err := c.SASL.validate(); err != nil {
		return err
	}
	if _, err := newRegistry(c.SchemaRegistry); err != nil {
		return err
	}
	if c.MaxTransactionRows < 0 {
		return fmt.Errorf("kafka.max_transaction_rows: %d must not be negative (0: no limit)", c.MaxTransactionRows)
	}
	if c.TransactionTimeout < time.Second {
		return fmt.Errorf("kafka.transaction_timeout: %v must be at least 1s", c.TransactionTimeout)
	}
	return nil
}

// CompressionCodec is kafka.compression as a franz-go codec.
func (c *Config) CompressionCodec() (kgo.CompressionCodec, error) {
	switch c.Compression {
	case "none", "":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("kafka.compression: %q is not one of none, gzip, snappy, lz4, zstd", c.Compression)
}
