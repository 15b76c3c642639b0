package flightsink_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/flightsink/flightsink/flightsink"
	"github.com/flightsink/flightsink/internal/kafkatest"
	"github.com/flightsink/flightsink/kafka"
)

// startReplica is one replica of a deployment: a server whose Kafka config
// is shared with the others (kcfg: brokers, transactional-id prefix), with
// its own replica name, claimed in the replica topic as `serve` does, so it
// heartbeats the transactional ids its streams use.
func startReplica(t *testing.T, replica string, srvOpts []flightsink.Option, kcfg kafka.Config) *testEnv {
	t.Helper()
	brokers, kind := kafkatest.Brokers(t)
	kcfg.Brokers, kcfg.Replica = brokers, replica
	logs := &syncBuffer{}
	log := zerolog.New(zerolog.MultiLevelWriter(zerolog.NewTestWriter(t), logs)).Level(zerolog.InfoLevel)
	sink, err := kafka.NewSink(kcfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	host, _ := os.Hostname()
	if _, err := sink.ClaimReplica(ctx, kafka.ReplicaIdentity{Address: replica, Host: host + "-" + replica, PID: os.Getpid(), Started: time.Now()}, nil); err != nil {
		sink.Close()
		t.Fatal(err)
	}
	if err := sink.Prepare(ctx); err != nil {
		sink.Close()
		t.Fatal(err)
	}
	fcfg := flightsink.DefaultConfig()
	fcfg.ShutdownGrace = time.Second
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
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Shutdown(context.Background())
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		sink.Close()
		mem.AssertSize(t, 0)
	})
	return &testEnv{logBuf: logs, addr: lis.Addr().String(), brokers: brokers, kind: kind, srv: srv, mem: mem,
		conn: conn, client: flight.NewFlightServiceClient(conn)}
}

// replicaConfig is the Kafka config the replicas of one test share.
func replicaConfig(t *testing.T) kafka.Config {
	kcfg := kafka.DefaultConfig()
	kcfg.ProduceTimeout = 20 * time.Second
	kcfg.MaxExactlyOnceStreams = 4
	unique := strconv.FormatInt(time.Now().UnixNano(), 36)
	kcfg.TransactionalIDPrefix = "fsadm-" + unique
	kcfg.ProgressTopic = "fsadm-writers-" + unique // this test's writers only
	kcfg.ReplicaClaimTTL = 3 * time.Second         // short for the tests that wait it out, long enough for a loaded machine's heartbeats
	return kcfg
}

// actionResult is a DoAction's one JSON result, or its failure.
type actionResult struct {
	body    map[string]any
	code    codes.Code
	reason  string
	message string
}

func (e *testEnv) action(t *testing.T, typ string, body any) actionResult {
	t.Helper()
	b, _ := json.Marshal(body)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var trailer metadata.MD
	stream, err := e.client.DoAction(ctx, &flight.Action{Type: typ, Body: b}, grpc.Trailer(&trailer))
	var res actionResult
	if err == nil {
		var r *flight.Result
		if r, err = stream.Recv(); err == nil {
			if err := json.Unmarshal(r.Body, &res.body); err != nil {
				t.Fatalf("%s: result is not JSON: %q", typ, r.Body)
			}
			if _, err := stream.Recv(); err != io.EOF {
				t.Fatalf("%s: more than one result: %v", typ, err)
			}
			return res
		}
	}
	st := status.Convert(err)
	res.code, res.message = st.Code(), st.Message()
	if v := trailer.Get(flightsink.TrailerReason); len(v) > 0 {
		res.reason = v[0]
	}
	return res
}

// ok fails the test unless the action succeeded.
func (r actionResult) ok(t *testing.T, what string) map[string]any {
	t.Helper()
	if r.body == nil {
		t.Fatalf("%s: %v %s (reason %s)", what, r.code, r.message, r.reason)
	}
	return r.body
}

// refused fails the test unless the action failed with code and reason,
// its message naming every fragment.
func (r actionResult) refused(t *testing.T, what string, code codes.Code, reason flightsink.Reason, fragments ...string) {
	t.Helper()
	if r.body != nil {
		t.Fatalf("%s succeeded (%v); want %v %s", what, r.body, code, reason)
	}
	if r.code != code || r.reason != string(reason) {
		t.Fatalf("%s: %v reason %q (%s); want %v %s", what, r.code, r.reason, r.message, code, reason)
	}
	for _, f := range fragments {
		if !strings.Contains(r.message, f) {
			t.Errorf("%s: message %q does not mention %q", what, r.message, f)
		}
	}
}
