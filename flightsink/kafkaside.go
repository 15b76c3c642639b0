package flightsink

import (
	"context"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flightsink/flightsink/kafka/sinkapi"
)

// Kafka is what the Flight service needs of the Kafka side; *kafka.Sink
// has it. The service depends on this interface and on package sinkapi
// alone, not on a Kafka client, so its tests can fake Kafka.
type Kafka interface {
	// Topic looks a topic up, creating it when kafka.create_topics is on.
	Topic(ctx context.Context, topic string) (sinkapi.TopicInfo, error)
	// Lookup is Topic without creating a missing topic.
	Lookup(ctx context.Context, topic string) (sinkapi.TopicInfo, error)
	// CreateTopic creates a topic with the broker's defaults.
	CreateTopic(ctx context.Context, topic string) error
	// CreateTopicsAllowed reports kafka.create_topics.
	CreateTopicsAllowed() bool
	// ListTopics lists the cluster's topics, the server's own left out.
	ListTopics(ctx context.Context) ([]string, error)
	// OwnedTopics maps each topic the server owns to the setting naming it.
	OwnedTopics() map[string]string
	// OpenAtLeastOnce opens a writer on the shared idempotent producer.
	OpenAtLeastOnce() sinkapi.Writer
	// OpenExactlyOnce opens a transactional writer (a named writer's:
	// fenced, with its stored progress).
	OpenExactlyOnce(ctx context.Context, topic, writerID string) (*sinkapi.Opened, error)
	// WriterStatus reads a named writer's committed progress, its own last
	// commit included however recent.
	WriterStatus(ctx context.Context, writerID string) (sinkapi.Progress, bool, error)
	// Writers lists every named writer's committed progress.
	Writers(ctx context.Context) ([]sinkapi.Progress, error)
	// ResetWriter fences a named writer on every replica, then forgets its
	// progress; it returns what it forgot (found false: nothing).
	ResetWriter(ctx context.Context, writerID string) (sinkapi.Progress, bool, error)
	// Transactions lists the open transactions of the server's
	// transactional ids; AbortTransaction aborts a lingering one
	// (sinkapi.ErrTxnNotAbortable otherwise).
	Transactions(ctx context.Context) ([]sinkapi.Transaction, error)
	AbortTransaction(ctx context.Context, transactionalID string) (sinkapi.Transaction, error)
	// WriterTransactionalID is the transactional id of a named writer.
	WriterTransactionalID(writerID string) string
	// LingerAfter is how long a transaction must be open before it may be
	// aborted as lingering.
	LingerAfter() time.Duration
	// NewPlan builds the record plan of a stream.
	NewPlan(schema *arrow.Schema, opts *sinkapi.RecordOptions, info sinkapi.TopicInfo, register sinkapi.RegisterFunc) (sinkapi.Plan, error)
	// SchemaRegistry is the schema registry, nil without one.
	SchemaRegistry() sinkapi.Registry
	// Limits are the settings a stream checks against.
	Limits() sinkapi.Limits
	// Tables returns the tables declared through Flight SQL, by topic, as
	// every replica sees them; DeclareTable stores a declaration.
	Tables(ctx context.Context) (map[string]sinkapi.Table, error)
	DeclareTable(ctx context.Context, t sinkapi.Table) error
	// SubjectTable returns the table a topic's Avro value subject in the
	// schema registry declares (found false: none).
	SubjectTable(ctx context.Context, topic string) (t sinkapi.Table, found bool, err error)
	// SubjectTables is SubjectTable for many topics, by topic (those
	// without such a subject left out).
	SubjectTables(ctx context.Context, topics []string) (map[string]sinkapi.Table, error)
	// CreateTopicWith is CreateTopic with a partition count (0: the
	// broker's default).
	CreateTopicWith(ctx context.Context, topic string, partitions int32) error
}
