package kafka

import "github.com/twmb/franz-go/pkg/kgo"

// explicitPartitioner honours a record's Partition when it is ≥ 0 (a
// stream's partition_field) and leaves every other record (Partition -1) to
// Kafka's default: murmur2 on the key as the Java client does, sticky for
// keyless records.
type explicitPartitioner struct{ inner kgo.Partitioner }

func newExplicitPartitioner() kgo.Partitioner {
	return explicitPartitioner{kgo.StickyKeyPartitioner(nil)}
}

func (p explicitPartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	return explicitTopic{p.inner.ForTopic(topic)}
}

type explicitTopic struct{ inner kgo.TopicPartitioner }

func (t explicitTopic) RequiresConsistency(r *kgo.Record) bool {
	return r.Partition >= 0 || t.inner.RequiresConsistency(r)
}

func (t explicitTopic) Partition(r *kgo.Record, n int) int {
	if r.Partition >= 0 {
		return int(r.Partition)
	}
	return t.inner.Partition(r, n)
}

// OnNewBatch passes the sticky partitioner's batch notifications through.
func (t explicitTopic) OnNewBatch() {
	if nb, ok := t.inner.(kgo.TopicPartitionerOnNewBatch); ok {
		nb.OnNewBatch()
	}
}
