// Package kafkatest finds a Kafka broker for tests and reads back what
// landed. In order: FLIGHTSINK_TEST_BROKERS (make test starts a real Apache
// Kafka broker and sets it), a Kafka container through dockertest when a
// Docker daemon answers, else an in-process kfake cluster. Each test logs
// which one it got, so a run says what it proved.
package kafkatest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Kind says which broker a test runs against.
type Kind string

// The kinds of broker Brokers can return.
const (
	RealKafka Kind = "real Apache Kafka (FLIGHTSINK_TEST_BROKERS)"
	Docker    Kind = "Apache Kafka container (dockertest)"
	KFake     Kind = "in-process kfake (no real broker: set FLIGHTSINK_TEST_BROKERS or run make test)"
)

var (
	once    sync.Once
	brokers []string
	kind    Kind
	initErr error
)

// Brokers returns the seed brokers of the test cluster, shared by the whole
// test binary, and logs which kind of broker it is.
func Brokers(t testing.TB) ([]string, Kind) {
	t.Helper()
	once.Do(func() {
		if env := os.Getenv("FLIGHTSINK_TEST_BROKERS"); env != "" {
			brokers, kind = strings.Split(env, ","), RealKafka
			return
		}
		if b, ok := dockerKafka(); ok {
			brokers, kind = b, Docker
			return
		}
		var c *kfake.Cluster
		c, initErr = kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(3))
		if initErr == nil {
			brokers, kind = c.ListenAddrs(), KFake
		}
	})
	if initErr != nil {
		t.Fatalf("starting a test broker: %v", initErr)
	}
	t.Logf("kafka under test: %s at %v", kind, brokers)
	return brokers, kind
}

// IsReal reports whether tests run against real Apache Kafka.
func IsReal(k Kind) bool { return k == RealKafka || k == Docker }

// Client returns a kgo client for the test cluster, closed at test end.
func Client(t testing.TB, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TopicName makes a topic name unique to this test run.
func TopicName(t testing.TB) string {
	name := strings.NewReplacer("/", "_", " ", "_", "#", "_").Replace(t.Name())
	return fmt.Sprintf("%s-%d", name, time.Now().UnixNano()%1_000_000_000)
}

// CreateTopic creates a topic with the given partitions and topic configs,
// and deletes it when the test ends.
func CreateTopic(t testing.TB, brokers []string, topic string, partitions int32, configs map[string]*string) {
	t.Helper()
	adm := kadm.NewClient(Client(t, brokers))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, partitions, 1, configs, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("creating topic %s: %v", topic, err)
	}
	// Wait until metadata shows every partition with a leader.
	for ctx.Err() == nil {
		md, err := adm.ListTopics(ctx, topic)
		if err == nil && md[topic].Err == nil && len(md[topic].Partitions) == int(partitions) {
			ready := true
			for _, p := range md[topic].Partitions {
				ready = ready && p.Leader >= 0
			}
			if ready {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = adm.DeleteTopics(ctx, topic) // best effort: a left-over test topic costs only disk
	})
}

// TopicExists reports whether the cluster has the topic.
func TopicExists(t testing.TB, brokers []string, topic string) bool {
	t.Helper()
	adm := kadm.NewClient(Client(t, brokers))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	md, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatalf("listing topics: %v", err)
	}
	return md.Has(topic)
}

// ReadCommitted consumes the whole topic as a read_committed consumer: every
// record below the last stable offset of every partition.
func ReadCommitted(t testing.TB, brokers []string, topic string) []*kgo.Record {
	return read(t, brokers, topic, kgo.ReadCommitted())
}

// ReadUncommitted consumes the whole topic as a read_uncommitted consumer,
// up to the high watermark: it shows aborted and open transactions' records.
func ReadUncommitted(t testing.TB, brokers []string, topic string) []*kgo.Record {
	return read(t, brokers, topic, kgo.ReadUncommitted())
}

// CountCommitted counts the topic's records as a read_committed consumer,
// without keeping them (for topics too large to hold in memory).
func CountCommitted(t testing.TB, brokers []string, topic string) int64 {
	var n int64
	scan(t, brokers, topic, kgo.ReadCommitted(), func(*kgo.Record) { n++ })
	return n
}

// ScanCommitted hands every record of the topic to fn as a read_committed
// consumer sees it, without keeping them (for topics too large to hold).
func ScanCommitted(t testing.TB, brokers []string, topic string, fn func(*kgo.Record)) {
	scan(t, brokers, topic, kgo.ReadCommitted(), fn)
}

func read(t testing.TB, brokers []string, topic string, iso kgo.IsolationLevel) []*kgo.Record {
	var out []*kgo.Record
	scan(t, brokers, topic, iso, func(r *kgo.Record) { out = append(out, r) })
	return out
}

// scan hands every data record of the topic, up to the settled end, to fn.
func scan(t testing.TB, brokers []string, topic string, iso kgo.IsolationLevel, fn func(*kgo.Record)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	adm := kadm.NewClient(Client(t, brokers))
	ends := settledEnds(t, ctx, adm, topic, iso)
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	cl := Client(t, brokers, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(iso),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.KeepControlRecords(), kgo.FetchMaxWait(200*time.Millisecond))
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: timed out with partitions %v not read to their end", topic, want)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetching %s[%d]: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			// Control records (transaction markers) take offsets too; they
			// tell where the consumer is but are not data.
			if !r.Attrs.IsControl() {
				fn(r)
			}
			if end, ok := want[r.Partition]; ok && r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
}

// settledEnds is where a reader must get to. For read_committed it is the
// last stable offset, once transaction markers settled: a commit returns to
// the producer before the coordinator has written the markers, so right
// after a commit the LSO may still lag. It waits (bounded) for LSO to reach
// the high watermark, and takes the LSO as it is when a transaction really
// stays open.
func settledEnds(t testing.TB, ctx context.Context, adm *kadm.Client, topic string, iso kgo.IsolationLevel) kadm.ListedOffsets {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		hwm, err := adm.ListEndOffsets(ctx, topic)
		if err != nil || hwm.Error() != nil {
			t.Fatalf("listing end offsets of %s: %v %v", topic, err, hwm.Error())
		}
		if iso != kgo.ReadCommitted() {
			return hwm
		}
		lso, err := adm.ListCommittedOffsets(ctx, topic)
		if err != nil || lso.Error() != nil {
			t.Fatalf("listing last stable offsets of %s: %v %v", topic, err, lso.Error())
		}
		settled := true
		hwm.Each(func(o kadm.ListedOffset) {
			if l, ok := lso.Lookup(o.Topic, o.Partition); !ok || l.Offset != o.Offset {
				settled = false
			}
		})
		if settled || time.Now().After(deadline) {
			return lso
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// LastStableEqualsHighWatermark reports whether no transaction holds back
// read_committed consumers of any partition of the topic right now.
func LastStableEqualsHighWatermark(t testing.TB, brokers []string, topic string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(Client(t, brokers))
	hwm, err := adm.ListEndOffsets(ctx, topic)
	if err != nil || hwm.Error() != nil {
		t.Fatalf("listing end offsets of %s: %v %v", topic, err, hwm.Error())
	}
	lso, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil || lso.Error() != nil {
		t.Fatalf("listing last stable offsets of %s: %v %v", topic, err, lso.Error())
	}
	equal := true
	hwm.Each(func(o kadm.ListedOffset) {
		if l, ok := lso.Lookup(o.Topic, o.Partition); !ok || l.Offset != o.Offset {
			equal = false
		}
	})
	return equal
}
