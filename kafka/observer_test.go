package kafka

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestErrorCode: the produce-error code reported to the observer is the
// Kafka error name or one word of a small fixed set.
func TestErrorCode(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{kerr.NotEnoughReplicas, "NOT_ENOUGH_REPLICAS"},
		{fmt.Errorf("produce: %w", kerr.MessageTooLarge), "MESSAGE_TOO_LARGE"},
		{kgo.ErrRecordTimeout, "timeout"},
		{context.DeadlineExceeded, "timeout"},
		{kgo.ErrAborting, "aborting"},
		{context.Canceled, "canceled"},
		{kgo.ErrRecordRetries, "retries"},
		{errors.New("dial tcp: refused"), "other"},
	} {
		if got := ErrorCode(c.err); got != c.want {
			t.Errorf("ErrorCode(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
