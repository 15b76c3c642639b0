package flightsink

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flightsink/flightsink/kafka"
)

// Reason is the machine-readable cause of a failed stream, sent to the client
// in the "flightsink-reason" trailer so it can decide whether to retry.
// docs/protocol.md has the table of reasons.
type Reason string

// Reasons a stream can fail for.
const (
	ReasonBadDescriptor    Reason = "bad_descriptor"    // the FlightDescriptor is invalid; do not retry
	ReasonBadSchema        Reason = "bad_schema"        // a column type or key/timestamp column is unusable; do not retry
	ReasonBadMetadata      Reason = "bad_metadata"      // app_metadata is not a valid marker; do not retry
	ReasonBadRow           Reason = "bad_row"           // a row cannot be written (e.g. too large); do not retry
	ReasonBadStream        Reason = "bad_stream"        // the IPC stream is malformed; do not retry
	ReasonTooLarge         Reason = "message_too_large" // a gRPC message exceeds flight.max_message_bytes
	ReasonTopicMissing     Reason = "topic_missing"     // the topic does not exist and create_topics is off
	ReasonClientAbort      Reason = "client_abort"      // the client sent {"abort": ...}
	ReasonFenced           Reason = "fenced"            // a newer stream of the same writer_id took over; do not retry this stream
	ReasonTxnTimeout       Reason = "txn_timeout"       // the broker aborted the transaction (kafka.transaction_timeout); resume
	ReasonStaleCheckpoint  Reason = "stale_checkpoint"  // the checkpoint is already committed; resume from ready.last_checkpoint
	ReasonCheckpointGap    Reason = "checkpoint_gap"    // a named writer skipped a checkpoint number
	ReasonWriterTopic      Reason = "writer_topic"      // a named writer was reopened on another topic
	ReasonOutcomeUnknown   Reason = "outcome_unknown"   // a commit's result is unknown; reconnect and read ready.last_checkpoint
	ReasonTooManyStreams   Reason = "too_many_streams"  // every exactly-once producer is busy; retry later
	ReasonClientGone       Reason = "client_gone"       // the client canceled or disconnected
	ReasonKafkaUnavailable Reason = "kafka_unavailable" // Kafka did not answer in time; retry later
	ReasonKafkaError       Reason = "kafka_error"       // Kafka refused the records
	ReasonShutdown         Reason = "shutdown"          // the server is shutting down; retry on another replica
	ReasonSchemaRejected   Reason = "schema_rejected"   // the schema registry refused the stream's schema (incompatible)
	ReasonForbidden        Reason = "forbidden"         // the principal may not write to this topic or with this delivery
	ReasonReservedTopic    Reason = "reserved_topic"    // the topic is the server's own or Kafka's internal one: never writable
	ReasonAuthRateLimited  Reason = "auth_rate_limited" // too many failed authentications from this peer; wait (auth.failure_window)
	ReasonIdle             Reason = "idle_timeout"      // the client sent nothing for flight.idle_timeout
	ReasonBatchTooLarge    Reason = "batch_too_large"   // a decoded record batch exceeds flight.max_batch_bytes
	ReasonUnimplemented    Reason = "unimplemented"     // the request asks for something this server does not do
	ReasonInternal         Reason = "internal"          // a bug; please report it
)

// TrailerReason is the gRPC trailer key that carries a Reason.
const TrailerReason = "flightsink-reason"

// Error is a stream failure with the gRPC code and Reason it maps to.
type Error struct {
	Code   codes.Code
	Reason Reason
	Msg    string
	Err    error // the cause, if any
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

func newError(code codes.Code, reason Reason, format string, args ...any) *Error {
	return &Error{Code: code, Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

func badDescriptor(msg string) *Error {
	return &Error{Code: codes.InvalidArgument, Reason: ReasonBadDescriptor, Msg: "invalid descriptor: " + msg}
}

func asError[T error](err error, target *T) bool { return errors.As(err, target) }

// classify turns any error of a stream into an *Error: typed errors keep
// their code, Kafka errors are mapped, context errors become Canceled.
func classify(err error) *Error {
	var fe *Error
	if errors.As(err, &fe) {
		return fe
	}
	switch {
	case errors.Is(err, context.Canceled):
		return &Error{Code: codes.Canceled, Reason: ReasonClientGone, Msg: "stream canceled by the client", Err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: codes.DeadlineExceeded, Reason: ReasonClientGone, Msg: "stream deadline exceeded", Err: err}
	case errors.Is(err, kafka.ErrFenced):
		return &Error{Code: codes.Aborted, Reason: ReasonFenced, Msg: err.Error(), Err: err}
	case errors.Is(err, kafka.ErrTxnAborted):
		return &Error{Code: codes.Aborted, Reason: ReasonTxnTimeout, Msg: err.Error(), Err: err}
	case errors.Is(err, kafka.ErrOutcomeUnknown):
		return &Error{Code: codes.Unavailable, Reason: ReasonOutcomeUnknown, Err: err,
			Msg: err.Error() + "; reconnect with the same writer_id and read last_checkpoint from ready"}
	case errors.Is(err, kafka.ErrPoolExhausted):
		return &Error{Code: codes.ResourceExhausted, Reason: ReasonTooManyStreams, Msg: err.Error(), Err: err}
	case errors.Is(err, kafka.ErrUnavailable):
		return &Error{Code: codes.Unavailable, Reason: ReasonKafkaUnavailable, Msg: err.Error(), Err: err}
	case errors.Is(err, kafka.ErrTopicMissing):
		return &Error{Code: codes.NotFound, Reason: ReasonTopicMissing, Msg: err.Error(), Err: err}
	case errors.Is(err, kafka.ErrRecordTooLarge), errors.Is(err, kafka.ErrRecordRejected):
		return &Error{Code: codes.InvalidArgument, Reason: ReasonBadRow, Msg: err.Error(), Err: err}
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		return &Error{Code: st.Code(), Reason: ReasonClientGone, Msg: st.Message(), Err: err}
	}
	return &Error{Code: codes.Internal, Reason: ReasonKafkaError, Msg: err.Error(), Err: err}
}
