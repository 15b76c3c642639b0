package fsclient_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/flightsink/flightsink/clients/go/fsclient"
)

// These tests replay the protocol fixtures of the repository
// (testdata/protocol: what the server sends, checked by the server's own
// tests) from a scripted Flight server, so they need no flightsink and no
// Kafka: the client must read every ack and error as the fixture says, and
// send markers the server's fixtures accept.

type ackFixture struct {
	Name    string          `json:"name"`
	Message json.RawMessage `json:"message"`
	Expect  json.RawMessage `json:"expect"`
}

type fixtures struct {
	Acks struct {
		Ready      []ackFixture `json:"ready"`
		Checkpoint []ackFixture `json:"checkpoint"`
		Done       []ackFixture `json:"done"`
	}
	Markers struct {
		Valid []struct {
			Name     string `json:"name"`
			Metadata string `json:"metadata"`
			Expect   struct {
				Checkpoint *int64  `json:"checkpoint"`
				Abort      *string `json:"abort"`
			} `json:"expect"`
		} `json:"valid"`
	}
	Errors []errorFixture
}

type errorFixture struct {
	Name    string     `json:"name"`
	Code    codes.Code `json:"code"`
	Reason  string     `json:"reason"`
	Message string     `json:"message"`
	Expect  struct {
		Retryable bool `json:"retryable"`
	} `json:"expect"`
}

// loadFixtures reads testdata/protocol of the repository. Outside it (this
// module from a module cache) there are none: the test is skipped, unless
// FLIGHTSINK_TEST_REQUIRE_TOOLS=1 (make test) makes that a failure.
func loadFixtures(t *testing.T) *fixtures {
	t.Helper()
	dir := filepath.Join("..", "..", "..", "testdata", "protocol")
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("FLIGHTSINK_TEST_REQUIRE_TOOLS") == "1" {
			t.Fatalf("protocol fixtures: %v", err)
		}
		t.Skipf("the protocol fixtures are in the flightsink repository (testdata/protocol): %v", err)
	}
	var fx fixtures
	for name, v := range map[string]any{"acks.json": &fx.Acks, "markers.json": &fx.Markers, "errors.json": &fx.Errors} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("testdata/protocol/%s: %v", name, err)
		}
	}
	if len(fx.Acks.Ready) == 0 || len(fx.Acks.Checkpoint) == 0 || len(fx.Acks.Done) == 0 || len(fx.Errors) == 0 {
		t.Fatal("testdata/protocol has no acks or errors")
	}
	return &fx
}

// The fixtures' expectations, null where a value is absent.
type (
	readyExpect struct {
		Protocol       int     `json:"protocol"` // not read by this client
		Delivery       string  `json:"delivery"`
		WriterID       *string `json:"writer_id"`
		LastCheckpoint *int64  `json:"last_checkpoint"`
		CommittedRows  int64   `json:"committed_rows"`
	}
	ackExpect struct {
		Checkpoint       int64             `json:"checkpoint"`
		Rows             int64             `json:"rows"`
		TotalRows        int64             `json:"total_rows"`
		SkippedRows      int64             `json:"skipped_rows"`
		DeadLetteredRows int64             `json:"dead_lettered_rows"`
		Offsets          *fsclient.Offsets `json:"offsets,omitempty"`
	}
	doneExpect struct {
		TotalRows      int64  `json:"total_rows"`
		LastCheckpoint *int64 `json:"last_checkpoint"`
		CommittedRows  *int64 `json:"committed_rows"`
		DiscardedRows  *int64 `json:"discarded_rows"`
	}
)

func expect[T any](t *testing.T, f ackFixture) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(f.Expect))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: expect: %v", f.Name, err)
	}
	return v
}

func (e readyExpect) want() fsclient.Ready {
	return fsclient.Ready{Delivery: e.Delivery, WriterID: deref(e.WriterID), LastCheckpoint: deref(e.LastCheckpoint), CommittedRows: e.CommittedRows}
}

func (e doneExpect) want() fsclient.Done {
	return fsclient.Done{TotalRows: e.TotalRows, LastCheckpoint: deref(e.LastCheckpoint), CommittedRows: deref(e.CommittedRows), DiscardedRows: deref(e.DiscardedRows)}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// script is what the fake server does on one DoPut: it sends ready first,
// then answers each marker the client sends (onMarker returns the messages
// to send, or an error status to end the stream with), and sends done once
// the client has closed.
type script struct {
	ready    json.RawMessage
	onMarker func(meta []byte) ([]json.RawMessage, error)
	done     json.RawMessage

	mu      sync.Mutex
	markers [][]byte // every app_metadata the client sent
}

// fakeServer is a Flight server that plays one script per DoPut.
type fakeServer struct {
	flight.BaseFlightServer
	script *script
}

func (f *fakeServer) DoPut(stream flight.FlightService_DoPutServer) error {
	s := f.script
	send := func(m json.RawMessage) error { return stream.Send(&flight.PutResult{AppMetadata: m}) }
	if _, err := stream.Recv(); err != nil {
		return err
	}
	if err := send(s.ready); err != nil {
		return err
	}
	for {
		data, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return send(s.done)
		}
		if err != nil {
			return err
		}
		if len(data.AppMetadata) == 0 {
			continue
		}
		s.mu.Lock()
		s.markers = append(s.markers, bytes.Clone(data.AppMetadata))
		s.mu.Unlock()
		msgs, err := s.onMarker(data.AppMetadata)
		for _, m := range msgs {
			if err := send(m); err != nil {
				return err
			}
		}
		if err != nil {
			return err
		}
	}
}

// serve starts the fake server and returns a client connected to it.
func serve(t *testing.T, fs flight.FlightServer) *fsclient.Client {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	flight.RegisterFlightServiceServer(gs, fs)
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	c, err := fsclient.Dial(lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		gs.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return c
}

var schema = arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil)

func rows(t *testing.T, n int) arrow.RecordBatch {
	t.Helper()
	b := array.NewInt64Builder(memory.DefaultAllocator)
	defer b.Release()
	for i := 0; i < n; i++ {
		b.Append(int64(i))
	}
	col := b.NewArray()
	defer col.Release()
	return array.NewRecordBatch(schema, []arrow.Array{col}, int64(n))
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// marker is the meaning of the valid marker fixture with these exact bytes.
func (fx *fixtures) marker(meta []byte) (checkpoint *int64, abort *string, ok bool) {
	for _, m := range fx.Markers.Valid {
		if m.Metadata == string(meta) {
			return m.Expect.Checkpoint, m.Expect.Abort, true
		}
	}
	return nil, nil, false
}

// TestReadyAndDone: Ready and Close return what every ready and done
// message of the fixtures says.
func TestReadyAndDone(t *testing.T) {
	fx := loadFixtures(t)
	for _, r := range fx.Acks.Ready {
		for _, d := range fx.Acks.Done {
			t.Run(r.Name+"/"+d.Name, func(t *testing.T) {
				fs := &fakeServer{script: &script{ready: r.Message, done: d.Message}}
				c := serve(t, fs)
				w, err := c.Open(ctxFor(t), fsclient.Descriptor{Topic: "t"}, schema)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := w.Ready(), expect[readyExpect](t, r).want(); got != want {
					t.Errorf("Ready() = %+v; the fixture says %+v", got, want)
				}
				done, err := w.Close(ctxFor(t))
				if err != nil {
					t.Fatal(err)
				}
				if want := expect[doneExpect](t, d).want(); done != want {
					t.Errorf("Close() = %+v; the fixture says %+v", done, want)
				}
			})
		}
	}
}

// TestCheckpointAcks: each Checkpoint returns what its ack says, and the
// client's first checkpoint marker is one the server's fixtures accept,
// byte for byte.
func TestCheckpointAcks(t *testing.T) {
	fx := loadFixtures(t)
	var ready *ackFixture
	for i, r := range fx.Acks.Ready {
		if expect[readyExpect](t, r).LastCheckpoint == nil {
			ready = &fx.Acks.Ready[i]
			break
		}
	}
	if ready == nil {
		t.Fatal("acks.json has no ready without a last checkpoint")
	}
	acks := fx.Acks.Checkpoint
	sc := &script{ready: ready.Message, done: fx.Acks.Done[0].Message}
	sc.onMarker = func(meta []byte) ([]json.RawMessage, error) {
		i := len(sc.markers) - 1
		if i >= len(acks) {
			return nil, status.Error(codes.Internal, "more markers than acks")
		}
		return []json.RawMessage{acks[i].Message}, nil
	}
	c := serve(t, &fakeServer{script: sc})
	ctx := ctxFor(t)
	w, err := c.Open(ctx, fsclient.Descriptor{Topic: "t"}, schema)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range acks {
		rec := rows(t, 3)
		err := w.Write(rec)
		rec.Release()
		if err != nil {
			t.Fatal(err)
		}
		got, err := w.Checkpoint(ctx)
		want := expect[ackExpect](t, a)
		if err != nil || got != fsclient.Ack(want) {
			t.Fatalf("Checkpoint %d = %+v, %v; the fixture says %+v", i+1, got, err, want)
		}
		if w.Acked() != got {
			t.Fatalf("Acked() = %+v after Checkpoint returned %+v", w.Acked(), got)
		}
	}
	if _, err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if len(sc.markers) != len(acks) {
		t.Fatalf("the client sent %d markers, want %d", len(sc.markers), len(acks))
	}
	if n, _, ok := fx.marker(sc.markers[0]); !ok || n == nil || *n != 1 {
		t.Errorf("the client's first checkpoint marker %q is not the fixture of checkpoint 1", sc.markers[0])
	}
}

// TestResumedNumbering: a client opened as a named writer with stored
// progress numbers its checkpoints on from ready.last_checkpoint.
func TestResumedNumbering(t *testing.T) {
	fx := loadFixtures(t)
	resumed := 0
	for _, r := range fx.Acks.Ready {
		last := expect[readyExpect](t, r).LastCheckpoint
		if last == nil {
			continue
		}
		resumed++
		t.Run(r.Name, func(t *testing.T) {
			sc := &script{ready: r.Message, done: fx.Acks.Done[0].Message,
				onMarker: func([]byte) ([]json.RawMessage, error) { return nil, nil }}
			c := serve(t, &fakeServer{script: sc})
			ctx := ctxFor(t)
			w, err := c.Open(ctx, fsclient.Descriptor{Topic: "t", WriterID: "w"}, schema)
			if err != nil {
				t.Fatal(err)
			}
			n, err := w.MarkCheckpoint()
			if err != nil || n != *last+1 {
				t.Fatalf("MarkCheckpoint = %d, %v; want %d", n, err, *last+1)
			}
			if _, err := w.Close(ctx); err != nil {
				t.Fatal(err)
			}
			sc.mu.Lock()
			defer sc.mu.Unlock()
			var m map[string]int64
			if len(sc.markers) != 1 || json.Unmarshal(sc.markers[0], &m) != nil || len(m) != 1 || m["checkpoint"] != *last+1 {
				t.Fatalf("the client sent %q; want one marker of checkpoint %d", sc.markers, *last+1)
			}
		})
	}
	if resumed == 0 {
		t.Fatal("acks.json has no ready with a last checkpoint")
	}
}

// TestAbort: the abort marker is one the server's fixtures accept, and the
// server's answer to it (client_abort) is a successful Abort.
func TestAbort(t *testing.T) {
	fx := loadFixtures(t)
	var abort *errorFixture
	for i, e := range fx.Errors {
		if e.Reason == "client_abort" {
			abort = &fx.Errors[i]
		}
	}
	if abort == nil {
		t.Fatal("errors.json has no client_abort")
	}
	sc := &script{ready: fx.Acks.Ready[0].Message, done: fx.Acks.Done[0].Message}
	c := serve(t, &failingServer{fakeServer: &fakeServer{script: sc}, fixture: *abort})
	ctx := ctxFor(t)
	w, err := c.Open(ctx, fsclient.Descriptor{Topic: "t"}, schema)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(ctx, "boom"); err != nil {
		t.Fatalf("Abort = %v; want nil after the server's client_abort", err)
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if len(sc.markers) != 1 {
		t.Fatalf("the client sent %q; want one abort marker", sc.markers)
	}
	if _, reason, ok := fx.marker(sc.markers[0]); !ok || reason == nil || *reason != "boom" {
		t.Errorf("the client's abort marker %q is not the fixture of abort \"boom\"", sc.markers[0])
	}
}

// failingServer ends the stream at the first marker with the status of an
// error fixture, its reason in the flightsink-reason trailer.
type failingServer struct {
	*fakeServer
	fixture errorFixture
}

func (f *failingServer) DoPut(stream flight.FlightService_DoPutServer) error {
	e := f.fixture
	f.script.onMarker = func([]byte) ([]json.RawMessage, error) {
		if e.Reason != "" {
			stream.SetTrailer(metadata.Pairs("flightsink-reason", e.Reason))
		}
		return nil, status.Error(e.Code, e.Message)
	}
	return f.fakeServer.DoPut(stream)
}

// TestErrors: a stream that fails with each error of the fixtures gives an
// *Error with its code, reason and message, retryable as the fixture says.
func TestErrors(t *testing.T) {
	fx := loadFixtures(t)
	for _, e := range fx.Errors {
		t.Run(e.Name, func(t *testing.T) {
			sc := &script{ready: fx.Acks.Ready[0].Message, done: fx.Acks.Done[0].Message}
			c := serve(t, &failingServer{fakeServer: &fakeServer{script: sc}, fixture: e})
			ctx := ctxFor(t)
			w, err := c.Open(ctx, fsclient.Descriptor{Topic: "t"}, schema)
			if err != nil {
				t.Fatal(err)
			}
			_, err = w.Checkpoint(ctx)
			var fe *fsclient.Error
			if !errors.As(err, &fe) {
				t.Fatalf("Checkpoint = %v; want an *fsclient.Error", err)
			}
			if fe.Code != e.Code || fe.Reason != e.Reason || fe.Message != e.Message || fe.Retryable() != e.Expect.Retryable {
				t.Errorf("got %v %q %q retryable=%v; the fixture says %v %q %q retryable=%v",
					fe.Code, fe.Reason, fe.Message, fe.Retryable(), e.Code, e.Reason, e.Message, e.Expect.Retryable)
			}
		})
	}
}
