package kafka

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// deadBroker is the address of a port nothing listens on: every dial is
// refused, as while a broker restarts.
func deadBroker(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// TestOutageAtOpenIsUnavailable: with no broker answering (connections
// refused), everything a stream does before its first row (the topic
// look-up, creating a topic, InitProducerId, reading a writer's progress)
// and the Flight SQL metadata calls fail with ErrUnavailable, which clients
// retry, not with a bare dial error that they would treat as final.
func TestOutageAtOpenIsUnavailable(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Brokers = []string{deadBroker(t)}
	cfg.ProduceTimeout = 10 * time.Second
	cfg.MaxExactlyOnceStreams = 1
	s, err := NewSink(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.progress.nPart = 3 // Prepare would have read it from the progress topic
	ctx := context.Background()
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"topic look-up", func() error { _, err := s.Topic(ctx, "orders"); return err }},
		{"ingest look-up", func() error { _, err := s.Lookup(ctx, "orders"); return err }},
		{"create topic", func() error { return s.CreateTopic(ctx, "orders") }},
		{"list topics", func() error { _, err := s.ListTopics(ctx); return err }},
		{"InitProducerId, anonymous", func() error { _, err := s.OpenExactlyOnce(ctx, "orders", ""); return err }},
		{"InitProducerId, named writer", func() error { _, err := s.OpenExactlyOnce(ctx, "orders", "w1"); return err }},
		{"progress read", func() error { _, _, err := s.WriterStatus(ctx, "w1"); return err }},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("got %v; want ErrUnavailable", err)
			}
			t.Logf("%v", err)
		})
	}
}

// TestProduceErrorMapping: what a retry can outlast is ErrUnavailable
// (Kafka's retriable codes, connection errors, kgo giving up on a record),
// what it cannot is not; typed errors keep their own mapping.
func TestProduceErrorMapping(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	tlsAlert := &net.OpError{Op: "remote error", Err: errors.New("tls: bad certificate")}
	cases := []struct {
		err  error
		want error // nil: returned as it is (kafka_error)
	}{
		{kerr.NotEnoughReplicas, ErrUnavailable},
		{kerr.NotEnoughReplicasAfterAppend, ErrUnavailable},
		{kerr.LeaderNotAvailable, ErrUnavailable},
		{kerr.NotLeaderForPartition, ErrUnavailable},
		{kerr.RequestTimedOut, ErrUnavailable},
		{kerr.BrokerNotAvailable, ErrUnavailable},
		{kerr.NetworkException, ErrUnavailable},
		{kerr.CoordinatorLoadInProgress, ErrUnavailable},
		{kerr.CoordinatorNotAvailable, ErrUnavailable},
		{kerr.NotCoordinator, ErrUnavailable},
		{kerr.ConcurrentTransactions, ErrUnavailable},
		{kerr.KafkaStorageError, ErrUnavailable},
		{fmt.Errorf("producing: %w", kerr.NotEnoughReplicas), ErrUnavailable},
		{fmt.Errorf("unable to dial: %w", dial), ErrUnavailable},
		{reset, ErrUnavailable},
		{io.EOF, ErrUnavailable},
		{fmt.Errorf("reading response: %w", io.ErrUnexpectedEOF), ErrUnavailable},
		{&net.DNSError{Err: "no such host", Name: "kafka-0.kafka", IsNotFound: true}, ErrUnavailable},
		{kgo.ErrRecordTimeout, ErrUnavailable},
		{kgo.ErrRecordRetries, ErrUnavailable},
		{kgo.ErrClientClosed, ErrUnavailable},
		{kerr.MessageTooLarge, ErrRecordTooLarge},
		{kerr.InvalidTimestamp, ErrRecordRejected},
		{kerr.CorruptMessage, ErrRecordRejected},
		{kerr.UnknownTopicOrPartition, ErrTopicMissing},
		{kerr.ProducerFenced, ErrFenced},
		{kerr.InvalidTxnState, ErrTxnAborted},
		{kerr.TopicAuthorizationFailed, nil},
		{kerr.TransactionalIDAuthorizationFailed, nil},
		{kerr.SaslAuthenticationFailed, nil},
		{kerr.PolicyViolation, nil},
		{fmt.Errorf("dial: %w: %w", dial, kerr.ClusterAuthorizationFailed), nil},
		{tlsAlert, nil},
		{x509.UnknownAuthorityError{}, nil},
		{context.Canceled, nil},
	}
	for _, c := range cases {
		got := mapProduceError(c.err)
		switch {
		case c.want == nil && (got != c.err || IsUnavailable(got)):
			t.Errorf("%v: mapped to %v (unavailable %v); want it unchanged: a retry cannot fix it", c.err, got, IsUnavailable(got))
		case c.want != nil && !errors.Is(got, c.want):
			t.Errorf("%v: mapped to %v; want %v", c.err, got, c.want)
		case c.want != nil && c.want != ErrUnavailable && errors.Is(got, ErrUnavailable):
			t.Errorf("%v: mapped to %v; want %v, not unavailable", c.err, got, c.want)
		}
	}
}
