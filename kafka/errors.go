package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// mapProduceError wraps a produce or commit error with the typed error a
// client should see. What matches none of them (authorization, a broker
// refusing a setting, ...) is returned as it is: a retry cannot fix it.
func mapProduceError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge):
		return fmt.Errorf("%w: %v", ErrRecordTooLarge, err)
	case errors.Is(err, kerr.InvalidTimestamp):
		return fmt.Errorf("%w: a record timestamp is outside the topic's accepted range: %v", ErrRecordRejected, err)
	case errors.Is(err, kerr.InvalidRecord), errors.Is(err, kerr.CorruptMessage):
		return fmt.Errorf("%w: %v", ErrRecordRejected, err)
	case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.UnknownTopicID):
		return fmt.Errorf("%w: %v", ErrTopicMissing, err)
	case errors.Is(err, kerr.ProducerFenced), errors.Is(err, kerr.InvalidProducerEpoch):
		return fmt.Errorf("%w: %v", ErrFenced, err)
	case errors.Is(err, kerr.InvalidTxnState), errors.Is(err, kerr.TransactionAbortable):
		return fmt.Errorf("%w: %v", ErrTxnAborted, err)
	case errors.Is(err, kgo.ErrClientClosed):
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return markUnavailable(err)
}

// markUnavailable wraps err with ErrUnavailable when it is an outage a
// retry can outlast (see IsUnavailable), and returns it unchanged otherwise.
func markUnavailable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) || !IsUnavailable(err) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// IsUnavailable reports whether err means Kafka is (for now) out of reach
// rather than refusing what was asked, so that the same request may succeed
// later: ErrUnavailable itself; a failed, refused, reset or dropped
// connection (EOF included) or a failed name lookup, since a server that
// started with these brokers sees those only while a broker restarts or
// moves; kgo giving up on a record (ErrRecordTimeout, ErrRecordRetries); and
// Kafka's retriable error codes (NOT_ENOUGH_REPLICAS, LEADER_NOT_AVAILABLE,
// NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT, BROKER_NOT_AVAILABLE,
// COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, ...), plus
// CONCURRENT_TRANSACTIONS. Codes that name a problem with the request
// (UNKNOWN_TOPIC_OR_PARTITION, CORRUPT_MESSAGE) are not outages, nor is a
// canceled context (the client left).
func IsUnavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, kgo.ErrRecordTimeout) || errors.Is(err, kgo.ErrRecordRetries) ||
		errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	// Kafka's own answer decides when there is one: a non-retriable code
	// (an authorization failure, say) wrapped in a connection-level error is
	// still not an outage.
	var ke *kerr.Error
	if errors.As(err, &ke) {
		switch ke {
		case kerr.UnknownTopicOrPartition, kerr.UnknownTopicID, kerr.CorruptMessage:
			return false
		case kerr.ConcurrentTransactions:
			return true
		}
		return ke.Retriable
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) ||
		errors.Is(err, syscall.ETIMEDOUT) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return opErr.Op != "remote error" // a TLS alert from the broker: its certificate or ours is wrong
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	// kgo's own transient conditions (a broker connection that died under a
	// request, a coordinator or controller not known yet) are sentinel
	// errors at the end of the chain; its wrappers (a failed producer-id
	// load) say nothing about the cause, so only the innermost error counts.
	return kgo.IsRetryableBrokerErr(innermost(err))
}

// innermost follows Unwrap to the end of err's chain.
func innermost(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}
