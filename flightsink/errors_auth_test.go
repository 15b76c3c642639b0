package flightsink

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"google.golang.org/grpc/codes"

	"github.com/flightsink/flightsink/kafka"
)

// TestClassifyKafkaAuthFailure: Kafka refusing the server's own credentials
// is Unavailable with reason kafka_auth_failed (retryable: the server reads
// renewed credentials without a restart), its message naming the cause;
// before, it was INTERNAL kafka_error. A commit whose outcome is unknown
// stays outcome_unknown.
func TestClassifyKafkaAuthFailure(t *testing.T) {
	refused := &kafka.AuthError{Mechanism: "OAUTHBEARER", Refused: true, Detail: "the token from file /t expired",
		Err: fmt.Errorf("%w: %s", kerr.SaslAuthenticationFailed, `{"status":"invalid_token"}`)}
	for _, err := range []error{
		refused,
		fmt.Errorf("waiting for Kafka to acknowledge: Kafka acknowledged none of 3 pending records within kafka.produce_timeout (30s): %w", refused),
		&kafka.AuthError{Mechanism: "OAUTHBEARER", Err: errors.New("fetching a token from https://idp/token: oauth2: \"invalid_client\"")},
	} {
		e := classify(err)
		if e.Code != codes.Unavailable || e.Reason != ReasonKafkaAuthFailed || !strings.Contains(e.Msg, err.Error()) {
			t.Errorf("classify(%v) = %v %s %q; want Unavailable kafka_auth_failed with the message", err, e.Code, e.Reason, e.Msg)
		}
		if ri, _ := reasonInfo(e.Reason); !ri.Retryable {
			t.Errorf("%s is not retryable", e.Reason)
		}
	}
	if !strings.HasPrefix(classify(refused).Msg, "Kafka refused authentication (SASL OAUTHBEARER): invalid_token") {
		t.Errorf("message %q", classify(refused).Msg)
	}
	commit := fmt.Errorf("%w: %w", kafka.ErrOutcomeUnknown, refused)
	if e := classify(commit); e.Reason != ReasonOutcomeUnknown {
		t.Errorf("a commit refused authentication: reason %s; want outcome_unknown (ready tells what was committed)", e.Reason)
	}
}
