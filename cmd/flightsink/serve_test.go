package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/flightsink/flightsink/internal/kafkatest"
	"github.com/twmb/franz-go/pkg/kfake"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// TestCheckConfig: serve --check-config validates the file, environment
// and flags and exits 0, without a network call.
func TestCheckConfig(t *testing.T) {
	b := newFakeBroker(t)
	code, stdout, stderr := run(t, nil, "serve", "--check-config", "--config", "/dev/null", "--brokers", b.addr())
	if code != 0 || !strings.Contains(stdout, "valid") {
		t.Fatalf("exit %d, stdout %q, stderr %q: want 0 and a line saying the configuration is valid", code, stdout, stderr)
	}
	b.requireUntouched(t)
	code, _, stderr = run(t, []string{"FLIGHTSINK_KAFKA_LINGER=-1s"}, "serve", "--check-config", "--config", "/dev/null", "--brokers", b.addr())
	if code != 1 || !strings.Contains(stderr, "kafka.linger") {
		t.Fatalf("exit %d, stderr %q: want 1 and the error naming kafka.linger", code, stderr)
	}
	b.requireUntouched(t)
}

// TestBadConfigBeforeKafka: a bad setting is reported as itself before
// flightsink dials Kafka, never as Kafka being unavailable, with
// --check-config and without it.
func TestBadConfigBeforeKafka(t *testing.T) {
	tokens := writeFile(t, "config.yaml", "auth:\n  tokens:\n    - {principal: loader, token: {env: NO_SUCH_VARIABLE_SET}}\n"+
		"  principals:\n    - {name: loader, topics: ['*']}\n")
	for _, c := range []struct {
		name    string
		env     []string
		args    []string
		setting string
	}{
		{"anonymous beyond loopback", nil, []string{"--listen", "0.0.0.0:0"}, "auth.allow_anonymous"},
		{"flight TLS files missing", []string{"FLIGHTSINK_FLIGHT_TLS_CERT_FILE=/nonexistent/tls.crt",
			"FLIGHTSINK_FLIGHT_TLS_KEY_FILE=/nonexistent/tls.key"}, nil, "flight.tls_cert_file"},
		{"token secret unset", nil, []string{"--config", tokens}, "auth.tokens[0].token"},
		{"kafka CA missing", []string{"FLIGHTSINK_KAFKA_TLS_ENABLED=true"}, []string{"--config", writeFile(t, "k.yaml",
			"kafka:\n  tls: {enabled: true, ca_file: /nonexistent/ca.pem}\n")}, "kafka.tls.ca_file"},
		{"metrics listener", []string{"FLIGHTSINK_METRICS_LISTEN=nowhere"}, nil, "metrics.listen"},
	} {
		for _, check := range []bool{true, false} {
			b := newFakeBroker(t)
			args := []string{"serve", "--config", "/dev/null"}
			if check {
				args = append(args, "--check-config")
			}
			args = append(append(args, c.args...), "--brokers", b.addr())
			env := append([]string{"FLIGHTSINK_KAFKA_PRODUCE_TIMEOUT=1s"}, c.env...)
			code, _, stderr := run(t, env, args...)
			if code != 1 || !strings.Contains(stderr, c.setting) || strings.Contains(stderr, "unavailable") {
				t.Errorf("%s (check-config %v): exit %d, stderr %q: want 1 and an error naming %s", c.name, check, code, stderr, c.setting)
			}
			b.requireUntouched(t)
		}
	}
}

// TestServeCommandLine: --help exits 0, arguments that would be ignored are
// refused, a wrong log level says which exist, and version prints the build.
func TestServeCommandLine(t *testing.T) {
	for _, args := range [][]string{{"serve", "--help"}, {"tail", "--help"}, {"--help"}} {
		if code, stdout, stderr := run(t, nil, args...); code != 0 || !strings.Contains(strings.ToLower(stdout+stderr), "usage") {
			t.Errorf("%v: exit %d, output %q; want 0 and the usage", args, code, stdout+stderr)
		}
	}
	for _, c := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"serve", "--dev", "--brokers", "kafka:9092"}, nil, "--dev runs its own in-memory broker"},
		{[]string{"serve", "--check-config", "extra"}, nil, `serve takes no arguments, only flags: "extra"`},
		{[]string{"serve", "--check-config"}, []string{"FLIGHTSINK_LOG_LEVEL=verbose"}, `log.level: "verbose" is not one of trace, debug, info, warn, error`},
		{[]string{"serve", "--check-config", "--metrics-listen", "nowhere"}, nil, "metrics.listen"},
	} {
		if code, _, stderr := run(t, c.env, c.args...); code != 1 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v %v: exit %d, stderr %q; want 1 and %q", c.env, c.args, code, stderr, c.want)
		}
	}
	if code, stdout, _ := run(t, nil, "version"); code != 0 || !strings.HasPrefix(stdout, "flightsink ") || !strings.Contains(stdout, "go1.") {
		t.Errorf("version: exit %d, %q", code, stdout)
	}
}

// TestSecondSignalEndsOpenStreams: the first SIGINT lets open streams
// finish within flight.shutdown_grace (here an hour); a second one ends
// them at once with reason shutdown, and the server exits 0. The serving
// line says where the metrics are, durations in logs carry units.
func TestSecondSignalEndsOpenStreams(t *testing.T) {
	addr, metricsAddr := freeAddr(t), freeAddr(t)
	p := start(t, []string{"FLIGHTSINK_FLIGHT_SHUTDOWN_GRACE=1h"}, "serve", "--dev", "--dev-kafka-addr", freeAddr(t),
		"--listen", addr, "--metrics-listen", metricsAddr)
	if !p.waitFor("flightsink serving") {
		t.Fatal("the server did not start")
	}
	p.mu.Lock()
	serving := p.log.String()
	p.mu.Unlock()
	if !strings.Contains(serving, `"metrics":"http://`+metricsAddr+`/metrics"`) {
		t.Errorf("the serving line does not say where the metrics are: %s", serving)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := flight.NewFlightServiceClient(conn).DoPut(ctx)
	if err != nil {
		t.Fatal(err)
	}
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	b.Field(0).(*array.Int64Builder).AppendValues([]int64{1, 2, 3}, nil)
	rec := b.NewRecordBatch()
	defer rec.Release()
	w := flight.NewRecordWriter(stream, ipc.WithSchema(schema))
	w.SetFlightDescriptor(&flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{"orders"}})
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil { // ready
		t.Fatal(err)
	}

	_ = p.cmd.Process.Signal(syscall.SIGINT)
	if !p.waitFor(`"grace":"1h0m0s"`) {
		t.Fatal("no stopping line with the grace as a duration")
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	var err2 error
	for err2 == nil {
		_, err2 = stream.Recv()
	}
	if reason := stream.Trailer().Get("flightsink-reason"); status.Code(err2) != codes.Unavailable || len(reason) != 1 || reason[0] != "shutdown" {
		t.Errorf("the open stream ended with %v, reason %v; want Unavailable, shutdown", err2, reason)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("the server exited with %v, want 0", err)
	}
}

// TestWaitsForKafkaAtStartup: a server whose Kafka is not up yet tries
// again with backoff, logging each try, and serves once Kafka answers;
// kafka.startup_timeout bounds the wait.
func TestWaitsForKafkaAtStartup(t *testing.T) {
	kafkaAddr := freeAddr(t)
	env := []string{"FLIGHTSINK_KAFKA_PRODUCE_TIMEOUT=1s", "FLIGHTSINK_METRICS_LISTEN=", "FLIGHTSINK_KAFKA_CREATE_TOPICS=true"}
	p := start(t, env, "serve", "--brokers", kafkaAddr, "--listen", freeAddr(t))
	if !p.waitFor("Kafka is not reachable yet; trying again") {
		t.Fatal("no log line for a failed try")
	}
	_, port, _ := net.SplitHostPort(kafkaAddr)
	n, _ := strconv.Atoi(port)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(n))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	if !p.waitFor("flightsink serving") {
		t.Fatal("the server did not serve once Kafka answered")
	}

	code, _, stderr := run(t, append(env, "FLIGHTSINK_KAFKA_STARTUP_TIMEOUT=2s"), "serve", "--brokers", freeAddr(t), "--listen", freeAddr(t))
	if code != 1 || !strings.Contains(stderr, "kafka.startup_timeout 2s") {
		t.Errorf("exit %d, stderr %q; want 1 and the error naming kafka.startup_timeout", code, stderr)
	}
}

// TestKafkaClientConfig: producer properties by their standard names, from
// the environment, reach the server (bootstrap.servers instead of
// kafka.brokers, compression, linger, client.rack); one that would break
// the guarantees stops it before any network call.
func TestKafkaClientConfig(t *testing.T) {
	brokers, _ := kafkatest.Brokers(t)
	props := fmt.Sprintf(`{"bootstrap.servers": %q, "compression.type": "zstd", "linger.ms": "10", "client.rack": "r1", "acks": "all"}`,
		strings.Join(brokers, ","))
	p := start(t, []string{"FLIGHTSINK_KAFKA_CLIENT_CONFIG=" + props, "FLIGHTSINK_METRICS_LISTEN=",
		"FLIGHTSINK_KAFKA_REPLICA=props-" + strconv.FormatInt(time.Now().UnixNano(), 36)}, "serve", "--listen", freeAddr(t))
	if !p.waitFor("flightsink serving") {
		t.Fatal("the server did not start")
	}
	p.mu.Lock()
	log := p.log.String()
	p.mu.Unlock()
	if !strings.Contains(log, fmt.Sprintf(`"kafka_brokers":["%s"`, brokers[0])) {
		t.Errorf("the serving line does not name bootstrap.servers' brokers: %s", log)
	}

	b := newFakeBroker(t)
	code, _, stderr := run(t, []string{`FLIGHTSINK_KAFKA_CLIENT_CONFIG={"acks": "1"}`}, "serve", "--brokers", b.addr())
	if code != 1 || !strings.Contains(stderr, `kafka.client_config: acks: "1"`) {
		t.Errorf("acks=1: exit %d, stderr %q; want 1 and an error naming acks", code, stderr)
	}
	b.requireUntouched(t)
}
