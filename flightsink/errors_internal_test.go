package flightsink

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestClip: an echoed value is valid UTF-8, never cut inside a character,
// at most maxEcho bytes of the original, with the original length noted.
func TestClip(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"delivery", "delivery"},
		{"bad\xffbyte", "bad\uFFFDbyte"},
		{strings.Repeat("a", maxEcho), strings.Repeat("a", maxEcho)},
		{strings.Repeat("a", maxEcho+1), strings.Repeat("a", maxEcho) + "... (cut from 257 bytes)"},
		{"a" + strings.Repeat("é", maxEcho), "a" + strings.Repeat("é", (maxEcho-1)/2) + "... (cut from 513 bytes)"},
		{strings.Repeat("€", 200), strings.Repeat("€", maxEcho/3) + "... (cut from 600 bytes)"},
	} {
		got := clip(c.in)
		if got != c.want {
			t.Errorf("clip(%.20q... %d bytes) = %q; want %q", c.in, len(c.in), got, c.want)
		}
		if !utf8.ValidString(got) {
			t.Errorf("clip(%.20q...) = %q is not valid UTF-8", c.in, got)
		}
	}
}

// TestStatusMessageBound: whatever the message, the status as gRPC sends it
// (percent-encoded) fits maxStatusMessage, is valid UTF-8, keeps the
// durable-state suffix whole at the end, and says how long it was.
func TestStatusMessageBound(t *testing.T) {
	suffix := " [durable_checkpoint=7 durable_rows=70000]"
	for _, msg := range []string{
		"short",
		strings.Repeat("x", 100<<10),
		strings.Repeat("é", 50<<10),
		strings.Repeat("%\n", 50<<10), // three bytes each when encoded
		strings.Repeat("\xffa", 10<<10),
	} {
		e := &Error{Code: codes.InvalidArgument, Reason: ReasonBadRow, Msg: msg, suffix: suffix}
		got := e.GRPCStatus().Message()
		if n := encodedLen(got); n > maxStatusMessage {
			t.Errorf("%.10q... (%d bytes): status message is %d bytes encoded; want at most %d", msg, len(msg), n, maxStatusMessage)
		}
		if !utf8.ValidString(got) || !strings.HasSuffix(got, suffix) {
			t.Errorf("%.10q...: status message %.60q... is not valid UTF-8 ending with the suffix", msg, got)
		}
		if encodedLen(strings.ToValidUTF8(msg, "\uFFFD")+suffix) > maxStatusMessage && !strings.Contains(got, "(message cut from ") {
			t.Errorf("%.10q...: a cut message does not say so: %.80q", msg, got)
		}
	}
}

// TestStatusCodeFollowsTable: the code a client sees is one the table lists
// for the reason, whatever code the error was made with.
func TestStatusCodeFollowsTable(t *testing.T) {
	for _, c := range []struct {
		e    *Error
		want codes.Code
	}{
		{&Error{Code: codes.FailedPrecondition, Reason: ReasonTopicMissing}, codes.FailedPrecondition},
		{&Error{Code: codes.NotFound, Reason: ReasonTopicMissing}, codes.NotFound},
		{&Error{Code: codes.Unavailable, Reason: ReasonClientGone}, codes.Canceled},
		{&Error{Code: codes.Internal, Reason: ReasonKafkaUnavailable}, codes.Unavailable},
	} {
		if got := c.e.GRPCStatus().Code(); got != c.want {
			t.Errorf("%v %s: status code %v; want %v", c.e.Code, c.e.Reason, got, c.want)
		}
	}
	// Plain statuses of the authenticator, gRPC and arrow-go get a reason.
	for code, want := range map[codes.Code]Reason{codes.Unauthenticated: ReasonUnauthenticated,
		codes.Unimplemented: ReasonUnimplemented, codes.InvalidArgument: ReasonBadRequest, codes.DataLoss: ReasonInternal} {
		if got := rpcError(status.Error(code, "x")).Reason; got != want {
			t.Errorf("plain %v status: reason %s; want %s", code, got, want)
		}
	}
	if got := rpcError(errors.New("kafka unavailable")).Reason; got != ReasonKafkaError {
		t.Errorf("a bare error: reason %s; want %s", got, ReasonKafkaError)
	}
}
