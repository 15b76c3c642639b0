package flightsink_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc/codes"

	"github.com/flightsink/flightsink/flightsink"
	"github.com/flightsink/flightsink/internal/kafkatest"
)

// The protocol fixtures (testdata/protocol, see its README) are what the
// server sends and accepts, read by these tests and by both clients' tests
// (clients/go/fsclient, tests/python): a change to a message fails here until
// the fixture says so, and then in every client that does not follow.

// fixtureWriter stands for the writer id in the fixtures; the tests use a
// unique one per run (a broker keeps a writer's progress).
const fixtureWriter = "fixture-writer"

type ackFixture struct {
	Name    string          `json:"name"`
	Message json.RawMessage `json:"message"`
	Expect  json.RawMessage `json:"expect"`
}

type ackFixtures struct {
	Ready      []ackFixture `json:"ready"`
	Checkpoint []ackFixture `json:"checkpoint"`
	Done       []ackFixture `json:"done"`
}

type markerFixtures struct {
	Valid []struct {
		Name     string `json:"name"`
		Metadata string `json:"metadata"`
		Expect   struct {
			Checkpoint *int64  `json:"checkpoint"`
			Abort      *string `json:"abort"`
		} `json:"expect"`
	} `json:"valid"`
	Invalid []struct {
		Name     string     `json:"name"`
		Metadata string     `json:"metadata"`
		Code     codes.Code `json:"code"`
		Reason   string     `json:"reason"`
		Message  string     `json:"message"`
	} `json:"invalid"`
}

type errorFixture struct {
	Name string `json:"name"`
	// Source says what the fixture is checked against: "stream" (the
	// server sends exactly it in TestProtocolFixtures), "table" (the
	// reason's row in the table of reasons; the message is an example) or
	// "grpc" (a status without a reason, made by gRPC itself).
	Source  string     `json:"source"`
	Code    codes.Code `json:"code"`
	Reason  string     `json:"reason"`
	Message string     `json:"message"`
	Expect  struct {
		Retryable         bool   `json:"retryable"`
		DurableCheckpoint *int64 `json:"durable_checkpoint"`
		DurableRows       *int64 `json:"durable_rows"`
	} `json:"expect"`
}

// readFixture decodes testdata/protocol/name strictly (a misspelt key fails).
func readFixture(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "protocol", name))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("testdata/protocol/%s: %v", name, err)
	}
}

// TestProtocolMarkers: ParseMarker reads every valid marker of the fixtures
// (the exact bytes each client sends among them) as the fixture says, and
// refuses every invalid one with the fixture's code, reason and message.
func TestProtocolMarkers(t *testing.T) {
	var fx markerFixtures
	readFixture(t, "markers.json", &fx)
	if len(fx.Valid) == 0 || len(fx.Invalid) == 0 {
		t.Fatal("no marker fixtures")
	}
	for _, c := range fx.Valid {
		var want flightsink.Marker
		switch {
		case c.Expect.Checkpoint != nil && c.Expect.Abort == nil:
			want.Checkpoint = *c.Expect.Checkpoint
		case c.Expect.Abort != nil && c.Expect.Checkpoint == nil:
			want.Abort, want.IsAbort = *c.Expect.Abort, true
		default:
			t.Fatalf("%s: expect needs one of checkpoint or abort", c.Name)
		}
		if got, err := flightsink.ParseMarker([]byte(c.Metadata)); err != nil || got != want {
			t.Errorf("%s: ParseMarker(%q) = %+v, %v; want %+v", c.Name, c.Metadata, got, err, want)
		}
	}
	for _, c := range fx.Invalid {
		_, err := flightsink.ParseMarker([]byte(c.Metadata))
		var fe *flightsink.Error
		if !errors.As(err, &fe) {
			t.Errorf("%s: ParseMarker(%q) = %v; want an *Error", c.Name, c.Metadata, err)
			continue
		}
		st := fe.GRPCStatus()
		if st.Code() != c.Code || string(fe.Reason) != c.Reason || st.Message() != c.Message {
			t.Errorf("%s: ParseMarker(%q) = %v %s %q;\nwant %v %s %q", c.Name, c.Metadata, st.Code(), fe.Reason, st.Message(), c.Code, c.Reason, c.Message)
		}
	}
}

// TestProtocolErrorFixtures: every error fixture with a reason agrees with
// the table of reasons (its code is one of the reason's, and the client-side
// retryable is the table's), and one without a reason is retryable exactly
// when it is Unavailable (the clients' rule for a lost connection).
func TestProtocolErrorFixtures(t *testing.T) {
	var fx []errorFixture
	readFixture(t, "errors.json", &fx)
	for _, e := range fx {
		if e.Reason == "" {
			if e.Source != "grpc" || e.Expect.Retryable != (e.Code == codes.Unavailable) {
				t.Errorf("%s: a status without a reason comes from gRPC and is retryable only when Unavailable", e.Name)
			}
			continue
		}
		var row *flightsink.ReasonInfo
		for i := range flightsink.Reasons {
			if string(flightsink.Reasons[i].Reason) == e.Reason {
				row = &flightsink.Reasons[i]
			}
		}
		if row == nil {
			t.Errorf("%s: reason %q is not in the table of reasons", e.Name, e.Reason)
			continue
		}
		if !containsCode(row.Codes, e.Code) || row.Retryable != e.Expect.Retryable {
			t.Errorf("%s: %v %s retryable=%v; the table says codes %v retryable=%v", e.Name, e.Code, e.Reason, e.Expect.Retryable, row.Codes, row.Retryable)
		}
		if e.Source != "stream" && e.Source != "table" {
			t.Errorf("%s: source %q, want stream or table", e.Name, e.Source)
		}
	}
}

func containsCode(cs []codes.Code, c codes.Code) bool {
	for _, x := range cs {
		if x == c {
			return true
		}
	}
	return false
}

// TestProtocolFixtures runs the streams that make the ack fixtures and the
// "stream" error fixtures and checks that the server sends exactly them:
// a named writer (new, two checkpoints, a committed tail; resumed; a stale
// and a skipped checkpoint), an anonymous exactly-once stream whose tail is
// discarded, one that aborts, one with a bad marker, and an at-least-once
// stream.
func TestProtocolFixtures(t *testing.T) {
	var acks ackFixtures
	readFixture(t, "acks.json", &acks)
	var errs []errorFixture
	readFixture(t, "errors.json", &errs)
	env := startServer(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, env.brokers, topic, 1, nil)
	writer := "fx-" + topic
	named := cmdDesc(map[string]any{"topic": topic, "delivery": "exactly_once", "writer_id": writer})
	anonymous := cmdDesc(map[string]any{"topic": topic, "delivery": "exactly_once"})

	used := map[string]bool{}
	fixture := func(kind string, list []ackFixture, name string) json.RawMessage {
		t.Helper()
		for _, f := range list {
			if f.Name == name {
				used[kind+"/"+f.Name] = true
				return f.Message
			}
		}
		t.Fatalf("acks.json has no %s %q", kind, name)
		return nil
	}
	// sameAck compares a received ack with a fixture as JSON values, the
	// run's writer id standing for fixtureWriter.
	sameAck := func(got map[string]any, kind, name string) {
		t.Helper()
		want := fixture(kind, pick(acks, kind), name)
		var w map[string]any
		if err := json.Unmarshal(want, &w); err != nil {
			t.Fatal(err)
		}
		if got["writer_id"] == writer {
			got["writer_id"] = fixtureWriter
		}
		if !reflect.DeepEqual(got, w) {
			g, _ := json.Marshal(got)
			t.Errorf("%s %s: the server sent\n%s\nthe fixture says\n%s", kind, name, g, want)
		}
	}
	sameError := func(res putResult, name string) {
		t.Helper()
		for _, e := range errs {
			if e.Name != name {
				continue
			}
			used["error/"+name] = true
			msg := strings.ReplaceAll(res.message, writer, fixtureWriter)
			if e.Source != "stream" || res.code != e.Code || res.reason != e.Reason || msg != e.Message {
				t.Errorf("error %s: the server sent %v %q %q;\nthe fixture says %v %q %q (source %q)", name, res.code, res.reason, msg, e.Code, e.Reason, e.Message, e.Source)
			}
			return
		}
		t.Errorf("errors.json has no %q", name)
	}
	// the next ack, which must be there
	next := func(ls *liveStream) map[string]any {
		t.Helper()
		m, err := ls.ack()
		if err != nil {
			t.Fatalf("no ack: %v (%+v)", err, ls.statusOf(err))
		}
		return m
	}
	// the rest of a stream that must fail after the last step
	failed := func(ls *liveStream) putResult {
		t.Helper()
		_, err := ls.ack()
		if err == nil {
			t.Fatal("the stream went on; want it to fail")
		}
		return ls.statusOf(err)
	}
	open := func(desc *flight.FlightDescriptor) (*liveStream, map[string]any) {
		t.Helper()
		ls, ready, err := env.open(t, desc, simpleSchema)
		if err != nil {
			t.Fatal(err)
		}
		return ls, ready
	}
	send := func(ls *liveStream, first, n int, meta string) {
		rec := simpleBatch(first, n, -1, 0)
		ls.send(rec, meta)
		rec.Release()
	}
	// the clean end of a stream, which must answer with done alone
	done := func(ls *liveStream) map[string]any {
		t.Helper()
		res := ls.finish()
		wantOK(t, res)
		if len(res.acks) != 1 {
			t.Fatalf("after the clean end: %v; want done alone", res.acks)
		}
		return res.acks[0]
	}

	// A named writer: new; 3 rows, checkpoint 1; 2 rows, checkpoint 2; a
	// tail of 1 row committed at the clean end as checkpoint 3.
	ls, ready := open(named)
	sameAck(ready, "ready", "exactly_once_named_new")
	send(ls, 0, 3, checkpoint(1))
	sameAck(next(ls), "checkpoint", "first")
	send(ls, 3, 2, checkpoint(2))
	sameAck(next(ls), "checkpoint", "second")
	send(ls, 5, 1, "")
	sameAck(done(ls), "done", "exactly_once_named_tail_committed")

	// Resumed at checkpoint 3: checkpoint 3 again is stale, 5 skips 4.
	ls, ready = open(named)
	sameAck(ready, "ready", "exactly_once_named_resumed")
	send(ls, 6, 1, checkpoint(3))
	sameError(failed(ls), "stale_checkpoint")
	ls, _ = open(named)
	send(ls, 6, 1, checkpoint(5))
	sameError(failed(ls), "checkpoint_gap")

	// Anonymous, commit_on_close false: 3 rows, checkpoint 1; the tail of 2
	// rows is discarded at the clean end.
	ls, ready = open(cmdDesc(map[string]any{"topic": topic, "delivery": "exactly_once", "commit_on_close": false}))
	sameAck(ready, "ready", "exactly_once_anonymous")
	send(ls, 0, 3, checkpoint(1))
	sameAck(next(ls), "checkpoint", "first")
	send(ls, 3, 2, "")
	sameAck(done(ls), "done", "exactly_once_anonymous_tail_discarded")

	// Anonymous: checkpoint 1, then an abort; then checkpoint 1 twice; then
	// a marker with two keys.
	ls, _ = open(anonymous)
	send(ls, 0, 3, checkpoint(1))
	next(ls)
	send(ls, 3, 1, `{"abort":"boom"}`)
	sameError(failed(ls), "client_abort")
	ls, _ = open(anonymous)
	send(ls, 0, 3, checkpoint(1))
	next(ls)
	send(ls, 3, 1, checkpoint(1))
	sameError(failed(ls), "checkpoint_not_increasing")
	ls, _ = open(anonymous)
	send(ls, 0, 3, `{"checkpoint":1,"abort":"x"}`)
	sameError(failed(ls), "bad_metadata")

	// At-least-once: 4 rows and a clean end.
	ls, ready = open(cmdDesc(map[string]any{"topic": topic, "delivery": "at_least_once"}))
	sameAck(ready, "ready", "at_least_once")
	send(ls, 0, 4, "")
	sameAck(done(ls), "done", "at_least_once")

	// every ack fixture and every "stream" error fixture was sent by the server
	for kind, list := range map[string][]ackFixture{"ready": acks.Ready, "checkpoint": acks.Checkpoint, "done": acks.Done} {
		for _, f := range list {
			if !used[kind+"/"+f.Name] {
				t.Errorf("acks.json %s %q: no stream of this test sends it", kind, f.Name)
			}
		}
	}
	for _, e := range errs {
		if e.Source == "stream" && !used["error/"+e.Name] {
			t.Errorf("errors.json %q (source stream): no stream of this test fails with it", e.Name)
		}
	}
}

func pick(a ackFixtures, kind string) []ackFixture {
	switch kind {
	case "ready":
		return a.Ready
	case "checkpoint":
		return a.Checkpoint
	}
	return a.Done
}
