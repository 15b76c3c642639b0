package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Errors that a stream reports to its client, wrapped with details. Test
// with errors.Is.
var (
	// ErrUnavailable means Kafka did not answer within kafka.produce_timeout.
	ErrUnavailable = errors.New("kafka unavailable")
	// ErrTopicMissing means the topic does not exist and create_topics is off.
	ErrTopicMissing = errors.New("topic does not exist")
	// ErrRecordTooLarge means a record exceeds the topic's max.message.bytes.
	ErrRecordTooLarge = errors.New("record too large")
	// ErrRecordRejected means the broker refused a record (a timestamp out
	// of range, a null key on a compacted topic) that the checks made when
	// the stream opened did not catch.
	ErrRecordRejected = errors.New("record rejected by the broker")
	// ErrFenced means a newer producer with the same transactional.id took
	// over: this stream's transaction can never commit.
	ErrFenced = errors.New("fenced")
	// ErrTxnAborted means the broker aborted the open transaction on its own,
	// typically because kafka.transaction_timeout passed without a commit.
	ErrTxnAborted = errors.New("transaction aborted by the broker")
	// ErrOutcomeUnknown means a commit was sent but its result is unknown; the
	// writer's stored progress tells the truth after a reconnect.
	ErrOutcomeUnknown = errors.New("commit outcome unknown")
)

// mapProduceError wraps a produce or commit error with the typed error a
// client should see.
func mapProduceError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge):
		return fmt.Errorf("%w: %v", ErrRecordTooLarge, err)
	case errors.Is(err, kerr.InvalidTimestamp):
		return fmt.Errorf("%w: a record timestamp is outside the topic's accepted range: %v", ErrRecordRejected, err)
	case errors.Is(err, kerr.InvalidRecord):
		return fmt.Errorf("%w: %v", ErrRecordRejected, err)
	case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.UnknownTopicID):
		return fmt.Errorf("%w: %v", ErrTopicMissing, err)
	case errors.Is(err, kerr.ProducerFenced), errors.Is(err, kerr.InvalidProducerEpoch):
		return fmt.Errorf("%w: %v", ErrFenced, err)
	case errors.Is(err, kerr.InvalidTxnState), errors.Is(err, kerr.TransactionAbortable):
		return fmt.Errorf("%w: %v", ErrTxnAborted, err)
	case errors.Is(err, kgo.ErrRecordTimeout), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, kgo.ErrRecordRetries), isNetworkError(err):
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}

func isNetworkError(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) || errors.Is(err, kgo.ErrClientClosed)
}
