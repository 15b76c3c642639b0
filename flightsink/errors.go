package flightsink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/flightsink/flightsink/kafka/sinkapi"
)

// Reason is the machine-readable cause of a failed call, sent to the client
// in the "flightsink-reason" trailer so it can decide whether to retry. Every
// reason is a row of Reasons; docs/protocol.md's table and both clients'
// retryable sets are checked against it (errors_test.go).
type Reason string

// Reasons a call can fail for; Reasons says what each means.
const (
	ReasonBadDescriptor    Reason = "bad_descriptor"
	ReasonBadRequest       Reason = "bad_request"
	ReasonBadSchema        Reason = "bad_schema"
	ReasonBadMetadata      Reason = "bad_metadata"
	ReasonBadRow           Reason = "bad_row"
	ReasonBadStream        Reason = "bad_stream"
	ReasonTooLarge         Reason = "message_too_large"
	ReasonBatchTooLarge    Reason = "batch_too_large"
	ReasonTooLargeTxn      Reason = "transaction_too_large"
	ReasonTooManyStreams   Reason = "too_many_streams"
	ReasonTopicMissing     Reason = "topic_missing"
	ReasonTopicExists      Reason = "topic_exists"
	ReasonAppendOnly       Reason = "append_only"
	ReasonClientAbort      Reason = "client_abort"
	ReasonFenced           Reason = "fenced"
	ReasonTxnTimeout       Reason = "txn_timeout"
	ReasonStaleCheckpoint  Reason = "stale_checkpoint"
	ReasonCheckpointGap    Reason = "checkpoint_gap"
	ReasonWriterTopic      Reason = "writer_topic"
	ReasonTxnNotAbortable  Reason = "txn_not_abortable"
	ReasonSchemaRejected   Reason = "schema_rejected"
	ReasonForbidden        Reason = "forbidden"
	ReasonReservedTopic    Reason = "reserved_topic"
	ReasonAuthRateLimited  Reason = "auth_rate_limited"
	ReasonUnauthenticated  Reason = "unauthenticated"
	ReasonIdle             Reason = "idle_timeout"
	ReasonKafkaUnavailable Reason = "kafka_unavailable"
	ReasonKafkaAuthFailed  Reason = "kafka_auth_failed"
	ReasonOutcomeUnknown   Reason = "outcome_unknown"
	ReasonShutdown         Reason = "shutdown"
	ReasonKafkaError       Reason = "kafka_error"
	ReasonClientGone       Reason = "client_gone"
	ReasonUnimplemented    Reason = "unimplemented"
	ReasonInternal         Reason = "internal"
)

// ReasonInfo is one row of the table of reasons.
type ReasonInfo struct {
	Reason Reason
	// Codes are the gRPC codes a status with this reason has; the first is
	// the usual one. A status always carries one of them.
	Codes []codes.Code
	// Retryable says whether the same request (for a stream: a reconnect
	// with the same writer_id, resuming from ready) may succeed later.
	Retryable bool
	// Meaning says what went wrong, Action what the client does about it
	// (docs/protocol.md markdown).
	Meaning, Action string
}

func row(r Reason, code codes.Code, retryable bool, meaning, action string, more ...codes.Code) ReasonInfo {
	return ReasonInfo{Reason: r, Codes: append([]codes.Code{code}, more...), Retryable: retryable, Meaning: meaning, Action: action}
}

// Reasons is the one table of reasons: code, whether a retry may succeed,
// and what each means. docs/protocol.md section 5 shows it (TestReasonTable
// checks it, and rewrites it with -update-docs).
var Reasons = []ReasonInfo{
	row(ReasonBadDescriptor, codes.InvalidArgument, false, "the descriptor is invalid (the message names the key)", "fix the descriptor"),
	row(ReasonBadRequest, codes.InvalidArgument, false, "a request other than a stream is invalid: a `DoAction` body, a Flight SQL command", "fix the request"),
	row(ReasonBadSchema, codes.InvalidArgument, false, "a column type cannot be written, or the key/timestamp column is missing or of the wrong type", "fix the schema or the descriptor"),
	row(ReasonBadMetadata, codes.InvalidArgument, false, "`app_metadata` is not a valid marker", "fix the client"),
	row(ReasonBadRow, codes.InvalidArgument, false, "a row cannot be written, e.g. its record exceeds the topic's `max.message.bytes`", "fix or leave out the row"),
	row(ReasonBadStream, codes.InvalidArgument, false, "the Arrow IPC stream is malformed or has no schema", "fix the client"),
	row(ReasonTooLarge, codes.ResourceExhausted, false, "a gRPC message exceeds `flight.max_message_bytes` (when gRPC refuses it before the server reads it, the status has no reason: see below)", "send smaller batches"),
	row(ReasonBatchTooLarge, codes.ResourceExhausted, false, "a record batch exceeds `flight.max_batch_rows` or `flight.max_batch_bytes` (as its header declares it, or decoded), or the stream's dictionaries exceed `flight.max_batch_bytes`", "send smaller batches or dictionaries"),
	row(ReasonTooLargeTxn, codes.ResourceExhausted, false, "the open transaction exceeds `kafka.max_transaction_rows` (or an ingest nears `kafka.transaction_timeout`)", "checkpoint more often"),
	row(ReasonTooManyStreams, codes.ResourceExhausted, true, "`flight.max_streams` (or the principal's `max_streams`) streams were open for all of `flight.stream_queue_timeout`, or `flight.max_queued_streams` streams were already waiting", "retry later, or on another replica"),
	row(ReasonTopicMissing, codes.NotFound, false, "the topic does not exist and `kafka.create_topics` is off (FailedPrecondition: a Flight SQL ingest or `CREATE TABLE` asked to create it), or a SQL statement names a table that is not declared", "create the topic, or `CREATE TABLE` it", codes.FailedPrecondition),
	row(ReasonTopicExists, codes.AlreadyExists, false, "Flight SQL ingest mode `create` on an existing topic, or `CREATE TABLE` of a declared table", "use mode `append` or `create_append`; `CREATE TABLE IF NOT EXISTS`"),
	row(ReasonAppendOnly, codes.FailedPrecondition, false, "`DROP TABLE` or `TRUNCATE`: topics are append-only (forgetting a declaration is an admin action)", "write to the table, or ask an admin"),
	row(ReasonClientAbort, codes.Aborted, false, "the client sent `{\"abort\": ...}`", "–"),
	row(ReasonFenced, codes.Aborted, false, "a newer stream of the same `writer_id` took over", "none: the newer stream owns the writer"),
	row(ReasonTxnTimeout, codes.Aborted, true, "the broker aborted the transaction after `kafka.transaction_timeout`", "resume; checkpoint more often"),
	row(ReasonStaleCheckpoint, codes.FailedPrecondition, false, "the checkpoint is already committed", "resume from `ready`"),
	row(ReasonCheckpointGap, codes.FailedPrecondition, false, "a named writer skipped a checkpoint number", "fix the client"),
	row(ReasonWriterTopic, codes.FailedPrecondition, false, "the writer was reopened on another topic", "use another `writer_id`"),
	row(ReasonTxnNotAbortable, codes.FailedPrecondition, false, "`transaction-abort` refused: the transaction is not lingering (open no longer than `kafka.transaction_timeout`, used by a live stream on some replica, or already ended), or the id is not one of this server's streams; the message says which", "leave it: the broker aborts it after its own timeout"),
	row(ReasonSchemaRejected, codes.FailedPrecondition, false, "the schema registry refused the stream's value or key schema (Avro, protobuf or JSON Schema; incompatible with the subject's versions)", "fix the schema or the subject's compatibility"),
	row(ReasonForbidden, codes.PermissionDenied, false, "the principal may not write to the topic or use the delivery mode", "ask for the permission"),
	row(ReasonReservedTopic, codes.PermissionDenied, false, "the topic is `kafka.progress_topic`, another topic the server owns, or a Kafka internal topic (`__…`): nobody may write to it", "write to another topic"),
	row(ReasonAuthRateLimited, codes.ResourceExhausted, false, "this peer failed to authenticate `auth.max_failures` times; its attempts are refused unchecked until failures age out (`auth.failure_window`); the message says when", "wait, then retry with valid credentials"),
	row(ReasonUnauthenticated, codes.Unauthenticated, false, "missing or invalid credentials (checked before the call starts)", "log in"),
	row(ReasonIdle, codes.DeadlineExceeded, true, "the client sent nothing for `flight.idle_timeout`", "resume"),
	row(ReasonKafkaUnavailable, codes.Unavailable, true, "Kafka could not be reached, answered with a passing condition (a refused or dropped connection, no leader, a coordinator loading, too few in-sync replicas, a request timeout) or acknowledged nothing within `kafka.produce_timeout`", "resume, with backoff"),
	row(ReasonKafkaAuthFailed, codes.Unavailable, true, "Kafka refused the server's own credentials (`kafka.sasl`: an expired or revoked token, a changed password) or the server could not obtain them (the token endpoint, a secret file, the AWS credential chain); the message names the cause. The server reads its credentials again at every authentication, so renewing them ends it without a restart", "resume, with backoff; operators renew `kafka.sasl`'s credentials"),
	row(ReasonOutcomeUnknown, codes.Unavailable, true, "a commit was sent but its result is unknown", "resume: `ready` tells the truth"),
	row(ReasonShutdown, codes.Unavailable, true, "the server is shutting down", "resume (on another replica)"),
	row(ReasonKafkaError, codes.Internal, false, "Kafka refused the request in a way a retry cannot fix (an authorization failure, a setting the broker rejects, ...); the message quotes Kafka", "fix the Kafka side (ACLs, topic or broker settings)"),
	row(ReasonClientGone, codes.Canceled, false, "the client canceled or disconnected, or its deadline passed", "–", codes.DeadlineExceeded),
	row(ReasonUnimplemented, codes.Unimplemented, false, "the request asks for something flightsink does not do (a query, a Flight SQL transaction, an unknown action)", "–"),
	row(ReasonInternal, codes.Internal, false, "a bug in flightsink", "report it"),
}

// reasonInfo is the table row of r; ok is false for a reason not in it.
func reasonInfo(r Reason) (ReasonInfo, bool) {
	for _, ri := range Reasons {
		if ri.Reason == r {
			return ri, true
		}
	}
	return ReasonInfo{}, false
}

// TrailerReason is the gRPC trailer key that carries a Reason.
const TrailerReason = "flightsink-reason"

// Error is a failed call with the gRPC code and Reason it maps to.
type Error struct {
	Code   codes.Code
	Reason Reason
	Msg    string
	Err    error // the cause, if any

	suffix string // appended after Msg is bounded: a stream's durable state
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

// GRPCStatus is the status the client sees: the code follows the table of
// reasons, the message is bounded (statusMessage).
func (e *Error) GRPCStatus() *status.Status {
	code := e.Code
	if ri, ok := reasonInfo(e.Reason); ok {
		found := false
		for _, c := range ri.Codes {
			found = found || c == code
		}
		if !found {
			code = ri.Codes[0]
		}
	}
	return status.New(code, statusMessage(e.Msg, e.suffix))
}

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
	case errors.Is(err, sinkapi.ErrFenced):
		return &Error{Code: codes.Aborted, Reason: ReasonFenced, Msg: err.Error(), Err: err}
	case errors.Is(err, sinkapi.ErrTxnNotAbortable):
		return &Error{Code: codes.FailedPrecondition, Reason: ReasonTxnNotAbortable, Msg: err.Error(), Err: err}
	case errors.Is(err, sinkapi.ErrTxnAborted):
		return &Error{Code: codes.Aborted, Reason: ReasonTxnTimeout, Msg: err.Error(), Err: err}
	case errors.Is(err, sinkapi.ErrOutcomeUnknown):
		return &Error{Code: codes.Unavailable, Reason: ReasonOutcomeUnknown, Err: err,
			Msg: err.Error() + "; reconnect with the same writer_id and read last_checkpoint from ready"}
	case errors.Is(err, sinkapi.ErrAuthFailed):
		return &Error{Code: codes.Unavailable, Reason: ReasonKafkaAuthFailed, Msg: err.Error() + "; retry later", Err: err}
	case errors.Is(err, sinkapi.ErrPoolExhausted):
		return &Error{Code: codes.ResourceExhausted, Reason: ReasonTooManyStreams, Msg: err.Error(), Err: err}
	case errors.Is(err, sinkapi.ErrTopicMissing):
		return &Error{Code: codes.NotFound, Reason: ReasonTopicMissing, Msg: err.Error(), Err: err}
	case errors.Is(err, sinkapi.ErrRecordTooLarge), errors.Is(err, sinkapi.ErrRecordRejected):
		return &Error{Code: codes.InvalidArgument, Reason: ReasonBadRow, Msg: err.Error(), Err: err}
	case errors.Is(err, sinkapi.ErrUnavailable), isNetworkError(err): // or an outage a code path did not wrap
		msg := err.Error()
		if !errors.Is(err, sinkapi.ErrUnavailable) {
			msg = sinkapi.ErrUnavailable.Error() + ": " + msg
		}
		return &Error{Code: codes.Unavailable, Reason: ReasonKafkaUnavailable, Msg: msg + "; retry later", Err: err}
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		return &Error{Code: st.Code(), Reason: ReasonClientGone, Msg: st.Message(), Err: err}
	}
	return &Error{Code: codes.Internal, Reason: ReasonKafkaError, Msg: err.Error(), Err: err}
}

// statusReasons names the reason of a plain gRPC status (one that gRPC,
// arrow-go's Flight SQL layer or the authenticator made, not an *Error).
var statusReasons = map[codes.Code]Reason{
	codes.InvalidArgument:  ReasonBadRequest,
	codes.Unauthenticated:  ReasonUnauthenticated,
	codes.PermissionDenied: ReasonForbidden,
	codes.Unimplemented:    ReasonUnimplemented,
	codes.Canceled:         ReasonClientGone,
	codes.DeadlineExceeded: ReasonClientGone,
}

// rpcError is the *Error of a failed RPC other than a stream's: typed errors
// as they are, plain statuses by their code, anything else (a Kafka error
// from writer-status or GetTables) as a stream's.
func rpcError(err error) *Error {
	var fe *Error
	if errors.As(err, &fe) {
		return fe
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return classify(err)
	}
	if st, ok := status.FromError(err); ok {
		reason, known := statusReasons[st.Code()]
		if !known {
			reason = ReasonInternal // a status this table does not know: a bug to report
		}
		return &Error{Code: st.Code(), Reason: reason, Msg: st.Message(), Err: err}
	}
	return classify(err)
}

// flightService prefixes the Flight RPCs; other services (gRPC health)
// keep their own statuses.
const flightService = "/arrow.flight.protocol.FlightService/"

// unaryErrors and streamErrors are the one place where an RPC's error
// becomes the status a client sees: the code and the flightsink-reason
// trailer follow the table of reasons, and the message is bounded. They are
// the outermost interceptors, so the authenticator's errors pass them too.
func (s *Server) unaryErrors(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	if err == nil || !strings.HasPrefix(info.FullMethod, flightService) {
		return resp, err
	}
	e := s.rpcFailed(info.FullMethod, err)
	_ = grpc.SetTrailer(ctx, metadata.Pairs(TrailerReason, string(e.Reason)))
	return nil, e.GRPCStatus().Err()
}

func (s *Server) streamErrors(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	err := handler(srv, ss)
	if err == nil || !strings.HasPrefix(info.FullMethod, flightService) {
		return err
	}
	e := s.rpcFailed(info.FullMethod, err)
	ss.SetTrailer(metadata.Pairs(TrailerReason, string(e.Reason)))
	return e.GRPCStatus().Err()
}

// rpcFailed maps err and logs what a stream's own log line (toStatus) does
// not cover: failures of the other RPCs that need an operator's eye.
func (s *Server) rpcFailed(method string, err error) *Error {
	var fe *Error
	streamed := errors.As(err, &fe) && fe.suffix != "" // a DoPut: toStatus logged it
	e := rpcError(err)
	if !streamed {
		switch {
		case e.Reason == ReasonInternal || e.Reason == ReasonKafkaError || e.Reason == ReasonKafkaAuthFailed:
			s.log.Error().Str("method", strings.TrimPrefix(method, flightService)).Str("code", e.Code.String()).
				Str("reason", string(e.Reason)).Msg("call failed: " + boundMessage(e.Msg, maxStatusMessage))
		case e.Reason == ReasonKafkaUnavailable:
			s.log.Warn().Str("method", strings.TrimPrefix(method, flightService)).
				Str("reason", string(e.Reason)).Msg("call failed: " + boundMessage(e.Msg, maxStatusMessage))
		}
	}
	return e
}

// Bounds of client-supplied text in statuses and logs. A status message
// travels percent-encoded in the grpc-message trailer, and gRPC clients
// refuse trailers over 8 KiB by default (16 KiB hard): pyarrow turns a
// larger one into a client-side ResourceExhausted or "Stream removed".
const (
	// maxEcho bounds one client-supplied value quoted in a message (a
	// descriptor key, a delivery value, an abort reason).
	maxEcho = 256
	// maxStatusMessage bounds a whole status message as sent: percent-
	// encoded, the durable-state suffix included.
	maxStatusMessage = 2048
)

// clip bounds a client-supplied string before it is echoed in a status or a
// log: valid UTF-8, at most maxEcho bytes of it, and when cut, the original
// length noted.
func clip(s string) string {
	if len(s) <= maxEcho {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	i := maxEcho
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return fmt.Sprintf("%s... (cut from %d bytes)", strings.ToValidUTF8(s[:i], "\uFFFD"), len(s))
}

// statusMessage is msg bounded to maxStatusMessage bytes as gRPC sends it
// (percent-encoded), with suffix kept whole at the end.
func statusMessage(msg, suffix string) string {
	return boundMessage(msg, maxStatusMessage-encodedLen(suffix)) + suffix
}

// boundMessage cuts msg, on a rune boundary, so that its percent-encoded
// form fits in limit bytes, noting the original length when it cuts.
func boundMessage(msg string, limit int) string {
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	if encodedLen(msg) <= limit {
		return msg
	}
	note := fmt.Sprintf("... (message cut from %d bytes)", len(msg))
	budget := limit - len(note)
	n, used := 0, 0
	for n < len(msg) {
		_, size := utf8.DecodeRuneInString(msg[n:])
		w := encodedLen(msg[n : n+size])
		if used+w > budget {
			break
		}
		used += w
		n += size
	}
	return msg[:n] + note
}

// encodedLen is the length of s percent-encoded as grpc-message is: bytes
// outside printable ASCII, and '%', take three.
func encodedLen(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' || c == '%' {
			n += 3
		} else {
			n++
		}
	}
	return n
}

// isNetworkError recognises a connection that failed or dropped: the
// Kafka side wraps its outages in sinkapi.ErrUnavailable; this is the
// backstop for one it did not.
func isNetworkError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.ErrUnexpectedEOF)
}
