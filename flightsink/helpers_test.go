package flightsink_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/flightsink/flightsink/flightsink"
	"github.com/flightsink/flightsink/internal/kafkatest"
	"github.com/flightsink/flightsink/kafka"
)

// testEnv is a flightsink server on a loopback port, over the test broker,
// with a checked allocator that must be empty when the test ends.
type testEnv struct {
	addr    string
	brokers []string
	kind    kafkatest.Kind
	srv     *flightsink.Server
	mem     *memory.CheckedAllocator
	conn    *grpc.ClientConn
	client  flight.FlightServiceClient
	logBuf  *syncBuffer
}

// logs returns everything the server logged so far.
func (e *testEnv) logs() string { return e.logBuf.String() }

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// requireTools says whether missing test tools (kcat, python) are a
// failure: make test sets FLIGHTSINK_TEST_REQUIRE_TOOLS=1 after installing them.
func requireTools() bool { return os.Getenv("FLIGHTSINK_TEST_REQUIRE_TOOLS") == "1" }

type envOption func(*flightsink.Config, *kafka.Config)

func startServer(t testing.TB, opts ...envOption) *testEnv {
	t.Helper()
	return startServerWith(t, nil, nil, opts...)
}

// startServerWith also takes server options (auth) and the client's
// transport credentials (TLS); nil means plaintext.
func startServerWith(t testing.TB, srvOpts []flightsink.Option, clientCreds credentials.TransportCredentials, opts ...envOption) *testEnv {
	t.Helper()
	brokers, kind := kafkatest.Brokers(t)
	fcfg, kcfg := flightsink.DefaultConfig(), kafka.DefaultConfig()
	kcfg.Brokers = brokers
	kcfg.ProduceTimeout = 20 * time.Second
	kcfg.MaxExactlyOnceStreams = 8
	kcfg.TransactionalIDPrefix = "fstest-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	fcfg.ShutdownGrace = time.Second
	for _, o := range opts {
		o(&fcfg, &kcfg)
	}
	logs := &syncBuffer{}
	log := zerolog.New(zerolog.MultiLevelWriter(zerolog.NewTestWriter(t), logs)).Level(zerolog.InfoLevel)
	sink, err := kafka.NewSink(kcfg, log)
	if err != nil {
		t.Fatal(err)
	}
	prepStart := time.Now()
	if err := sink.Prepare(context.Background()); err != nil {
		sink.Close()
		t.Fatal(err)
	}
	t.Logf("sink ready in %v (%d pool ids re-initialised)", time.Since(prepStart), kcfg.MaxExactlyOnceStreams)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	srv, err := flightsink.NewServer(fcfg, sink, append([]flightsink.Option{flightsink.WithAllocator(mem), flightsink.WithLogger(log)}, srvOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	if clientCreds == nil {
		clientCreds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(clientCreds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	env := &testEnv{logBuf: logs, addr: lis.Addr().String(), brokers: brokers, kind: kind, srv: srv, mem: mem,
		conn: conn, client: flight.NewFlightServiceClient(conn)}
	t.Cleanup(func() {
		conn.Close()
		srv.Shutdown(context.Background())
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		sink.Close()
		mem.AssertSize(t, 0)
	})
	return env
}

// step is one thing a test client sends: a batch (optionally with
// app_metadata), or app_metadata alone.
type step struct {
	rec  arrow.RecordBatch
	meta []byte
}

func batch(rec arrow.RecordBatch) step               { return step{rec: rec} }
func batchMeta(rec arrow.RecordBatch, m string) step { return step{rec: rec, meta: []byte(m)} }
func metaOnly(m string) step                         { return step{meta: []byte(m)} }
func checkpoint(n int) string                        { return `{"checkpoint":` + itoa(n) + `}` }

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// putResult is what a client saw of a DoPut.
type putResult struct {
	acks    []map[string]any
	err     error
	code    codes.Code
	reason  string
	message string
}

// put runs a whole DoPut: descriptor and schema, the steps, a clean close,
// then reads every ack until the server ends the RPC.
func (e *testEnv) put(t *testing.T, desc *flight.FlightDescriptor, schema *arrow.Schema, steps ...step) putResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stream, err := e.client.DoPut(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := flight.NewRecordWriter(stream, ipc.WithSchema(schema))
	w.SetFlightDescriptor(desc)
	sendErr := sendSteps(w, schema, steps)
	_ = w.Close()
	_ = stream.CloseSend()
	res := readResults(stream)
	if res.err == nil && sendErr != nil && !errors.Is(sendErr, io.EOF) {
		t.Fatalf("sending: %v", sendErr)
	}
	return res
}

// sendSteps writes the steps. arrow-go's writer sends the schema lazily
// with the first batch, so when the first step is metadata alone, a zero-row
// batch goes first (pyarrow sends the schema at do_put by itself).
func sendSteps(w *flight.Writer, schema *arrow.Schema, steps []step) error {
	if len(steps) > 0 && steps[0].rec == nil {
		empty := array.NewRecordBatch(schema, emptyColumns(schema), 0)
		defer empty.Release()
		if err := w.Write(empty); err != nil {
			return err
		}
	}
	for _, s := range steps {
		var err error
		switch {
		case s.rec != nil && s.meta != nil:
			err = w.WriteWithAppMetadata(s.rec, s.meta)
		case s.rec != nil:
			err = w.Write(s.rec)
		default:
			err = w.WriteMetadata(s.meta)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func readResults(stream flight.FlightService_DoPutClient) putResult {
	var res putResult
	for {
		pr, err := stream.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				res.err = err
				st := status.Convert(err)
				res.code, res.message = st.Code(), st.Message()
				if v := stream.Trailer().Get(flightsink.TrailerReason); len(v) > 0 {
					res.reason = v[0]
				}
			}
			return res
		}
		var m map[string]any
		if err := json.Unmarshal(pr.AppMetadata, &m); err != nil {
			res.err = err
			return res
		}
		res.acks = append(res.acks, m)
	}
}

func pathDesc(topic string) *flight.FlightDescriptor {
	return &flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{topic}}
}

func cmdDesc(v any) *flight.FlightDescriptor {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: b}
}

func rawCmd(s string) *flight.FlightDescriptor {
	return &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: []byte(s)}
}

// wantOK fails the test unless the stream ended OK.
func wantOK(t *testing.T, res putResult) {
	t.Helper()
	if res.err != nil {
		t.Fatalf("stream failed: %v (reason %q)", res.err, res.reason)
	}
}

// wantStatus checks a failed stream's code, reason and message fragments.
func wantStatus(t *testing.T, res putResult, code codes.Code, reason string, fragments ...string) {
	t.Helper()
	if res.err == nil {
		t.Fatalf("stream succeeded; want %v %s", code, reason)
	}
	if res.code != code || res.reason != reason {
		t.Fatalf("got %v reason %q (%s); want %v reason %q", res.code, res.reason, res.message, code, reason)
	}
	for _, f := range fragments {
		if !strings.Contains(res.message, f) {
			t.Errorf("message %q does not mention %q", res.message, f)
		}
	}
	if !strings.Contains(res.message, "[durable_checkpoint=") {
		t.Errorf("message %q lacks the durable suffix", res.message)
	}
}

func emptyColumns(schema *arrow.Schema) []arrow.Array {
	cols := make([]arrow.Array, schema.NumFields())
	for i, f := range schema.Fields() {
		cols[i] = array.MakeArrayOfNull(memory.DefaultAllocator, f.Type, 0)
	}
	return cols
}

// liveStream is a DoPut the test drives step by step, reading acks as it goes.
type liveStream struct {
	t      *testing.T
	cancel context.CancelFunc
	stream flight.FlightService_DoPutClient
	w      *flight.Writer
	schema *arrow.Schema
}

// open starts a DoPut and sends the descriptor with the schema (a zero-row
// batch, as pyarrow sends the schema at do_put), then reads the ready ack.
func (e *testEnv) open(t *testing.T, desc *flight.FlightDescriptor, schema *arrow.Schema) (*liveStream, map[string]any, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	stream, err := e.client.DoPut(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ls := &liveStream{t: t, cancel: cancel, stream: stream, schema: schema}
	t.Cleanup(cancel)
	ls.w = flight.NewRecordWriter(stream, ipc.WithSchema(schema))
	ls.w.SetFlightDescriptor(desc)
	empty := array.NewRecordBatch(schema, emptyColumns(schema), 0)
	defer empty.Release()
	if err := ls.w.Write(empty); err != nil {
		return ls, nil, ls.finish().err
	}
	ready, err := ls.ack()
	return ls, ready, err
}

// ack reads the next ack; an error is the stream's final status.
func (ls *liveStream) ack() (map[string]any, error) {
	pr, err := ls.stream.Recv()
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(pr.AppMetadata, &m); err != nil {
		ls.t.Fatalf("ack is not JSON: %q", pr.AppMetadata)
	}
	return m, nil
}

// send writes a batch, with app_metadata if meta is not empty. Send errors
// surface in the next ack or finish.
func (ls *liveStream) send(rec arrow.RecordBatch, meta string) {
	if meta != "" {
		_ = ls.w.WriteWithAppMetadata(rec, []byte(meta))
	} else {
		_ = ls.w.Write(rec)
	}
}

// meta sends app_metadata alone (pyarrow's write_metadata).
func (ls *liveStream) meta(m string) { _ = ls.w.WriteMetadata([]byte(m)) }

// checkpoint sends a batch with checkpoint n and waits for its ack.
func (ls *liveStream) checkpoint(rec arrow.RecordBatch, n int) (map[string]any, error) {
	ls.send(rec, checkpoint(n))
	return ls.ack()
}

// finish closes the client side and reads what is left.
func (ls *liveStream) finish() putResult {
	_ = ls.w.Close()
	_ = ls.stream.CloseSend()
	return readResults(ls.stream)
}

// statusOf reads the code, reason and message of a stream's final error.
func (ls *liveStream) statusOf(err error) putResult {
	res := putResult{err: err}
	st := status.Convert(err)
	res.code, res.message = st.Code(), st.Message()
	if v := ls.stream.Trailer().Get(flightsink.TrailerReason); len(v) > 0 {
		res.reason = v[0]
	}
	return res
}

// waitFor polls cond until it holds, failing the test after a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
