package kafka

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Observer is told what the sink's producers do, for metrics. The binary
// passes internal/metrics; kafka declares what it reports instead of
// importing a metrics package. Methods must be safe for concurrent use and
// cheap: they are called once per produced batch or transaction, never per
// row.
type Observer interface {
	// TxnCommitted reports a committed transaction and how long its commit
	// (EndTransaction, after the flush) took.
	TxnCommitted(took time.Duration)
	// TxnAborted reports an aborted transaction that held records.
	TxnAborted()
	// ProduceError reports a record Kafka did not take, by ErrorCode.
	ProduceError(code string)
	// BufferedBytes moves the producers' unacknowledged bytes by delta: +
	// when a batch is handed to a producer, - when Kafka acknowledged or
	// failed it.
	BufferedBytes(delta int64)
}

// nopObserver reports nowhere: the sink's observer until Observe is called.
type nopObserver struct{}

func (nopObserver) TxnCommitted(time.Duration) {}
func (nopObserver) TxnAborted()                {}
func (nopObserver) ProduceError(string)        {}
func (nopObserver) BufferedBytes(int64)        {}

// Observe makes the sink report to o (nil: nowhere). Call it before the
// first stream opens.
func (s *Sink) Observe(o Observer) {
	if o == nil {
		o = nopObserver{}
	}
	s.obs = o
}

// ErrorCode names a record's produce error for Observer.ProduceError: the
// Kafka error name (NOT_ENOUGH_REPLICAS, MESSAGE_TOO_LARGE, ...), "timeout"
// for a record or context deadline, "aborting" for records dropped by an
// aborted transaction, "canceled" for a canceled context, "retries" for
// kgo.ErrRecordRetries, else "other". The set is small and fixed, so a
// metric labelled with it stays bounded.
func ErrorCode(err error) string {
	var ke *kerr.Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &ke):
		return ke.Message
	case errors.Is(err, kgo.ErrRecordTimeout), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, kgo.ErrAborting):
		return "aborting"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, kgo.ErrRecordRetries):
		return "retries"
	}
	return "other"
}
