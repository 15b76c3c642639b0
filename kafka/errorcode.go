package kafka

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// errorCode is the code label ProduceError takes for a record's produce
// error: the Kafka error name (NOT_ENOUGH_REPLICAS, MESSAGE_TOO_LARGE, ...),
// "timeout" for a record or context deadline, "aborting" for records dropped
// by an aborted transaction, "canceled" for a canceled context, "retries" for
// kgo.ErrRecordRetries, else "other". The set is small and fixed, so the
// label's cardinality is bounded.
func errorCode(err error) string {
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
