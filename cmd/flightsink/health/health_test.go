package health

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

const interval = 50 * time.Millisecond

// fakeKafka is a Checker whose answer the test sets; calls counts checks.
type fakeKafka struct {
	mu    sync.Mutex
	err   error
	calls atomic.Int64
}

func (f *fakeKafka) set(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *fakeKafka) check(ctx context.Context) error {
	f.calls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// eventually polls cond until it holds, failing after a generous bound.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestReadinessFollowsKafka: not ready before the first check, ready when the
// checker passes, false when it starts failing (with its error on /readyz),
// ready again after it recovers; /healthz is 200 throughout.
func TestReadinessFollowsKafka(t *testing.T) {
	defer goleak.VerifyNone(t)
	kafka := &fakeKafka{}
	kafka.set(errors.New("dial tcp 127.0.0.1:9092: connection refused"))
	var changes []bool
	var changesMu sync.Mutex
	h := New(kafka.check, interval, WithOnChange(func(ready bool, err error) {
		changesMu.Lock()
		changes = append(changes, ready)
		changesMu.Unlock()
	}))
	defer h.Close()
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("metrics\n")) })
	srv := httptest.NewServer(h.Mux(metrics))
	defer srv.Close()

	eventually(t, "a first check", func() bool { return kafka.calls.Load() >= 1 })
	if h.Ready() {
		t.Fatal("ready while the checker fails")
	}
	code, body := get(t, srv.URL+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "connection refused") {
		t.Fatalf("/readyz while failing: %d %q, want 503 naming the error", code, body)
	}

	kafka.set(nil)
	eventually(t, "ready", h.Ready)
	if code, body := get(t, srv.URL+"/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Fatalf("/readyz when ready: %d %q", code, body)
	}

	kafka.set(errors.New("broker stopped"))
	eventually(t, "not ready after Kafka fails", func() bool { return !h.Ready() })
	code, body = get(t, srv.URL+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "broker stopped") {
		t.Fatalf("/readyz after failure: %d %q", code, body)
	}
	if code, body := get(t, srv.URL+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz while not ready: %d %q, want 200", code, body)
	}

	kafka.set(nil)
	eventually(t, "ready after Kafka recovers", h.Ready)
	if code, _ := get(t, srv.URL+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz after recovery: %d", code)
	}
	if err := Probe(context.Background(), srv.URL+"/readyz"); err != nil {
		t.Fatalf("Probe /readyz when ready: %v", err)
	}
	if code, body := get(t, srv.URL+"/metrics"); code != http.StatusOK || body != "metrics\n" {
		t.Fatalf("/metrics: %d %q", code, body)
	}

	h.Close()
	if h.Ready() {
		t.Fatal("ready after Close")
	}
	code, body = get(t, srv.URL+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
		t.Fatalf("/readyz after Close: %d %q", code, body)
	}
	if code, _ := get(t, srv.URL+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz after Close: %d, want 200 while the process serves", code)
	}
	// Probe (the container healthcheck) agrees with the HTTP codes.
	if err := Probe(context.Background(), srv.URL+"/healthz"); err != nil {
		t.Fatalf("Probe /healthz: %v", err)
	}
	if err := Probe(context.Background(), srv.URL+"/readyz"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Probe /readyz after Close: %v, want a 503 error", err)
	}
	changesMu.Lock()
	got := changes
	changesMu.Unlock()
	if want := []bool{true, false, true}; !equalBools(got, want) {
		t.Fatalf("onChange calls %v, want %v", got, want)
	}
	srv.Close()
	srv.Client().CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestStaleCheck: a pass older than two intervals is not ready, even though
// no check failed (the clock is the test's).
func TestStaleCheck(t *testing.T) {
	h := &Health{interval: time.Second, lastErr: nil}
	now := time.Unix(1000, 0)
	h.now = func() time.Time { return now }
	h.lastOK = now.Add(-1500 * time.Millisecond)
	if ok, err := h.State(); !ok {
		t.Fatalf("a pass 1.5 intervals old: not ready: %v", err)
	}
	h.lastOK = now.Add(-2500 * time.Millisecond)
	ok, err := h.State()
	if ok || err == nil || !strings.Contains(err.Error(), "old") {
		t.Fatalf("a pass 2.5 intervals old: ready=%v err=%v", ok, err)
	}
}

// TestHangingCheckTimesOut: a checker that blocks until its context ends is
// cut off after one interval and counts as failed.
func TestHangingCheckTimesOut(t *testing.T) {
	defer goleak.VerifyNone(t)
	var hang atomic.Bool
	var calls atomic.Int64
	h := New(func(ctx context.Context) error {
		calls.Add(1)
		if hang.Load() {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}, interval)
	defer h.Close()
	eventually(t, "ready", h.Ready)
	hang.Store(true)
	// Staleness may say "not ready" first; the timed-out check follows.
	eventually(t, "a timed-out check", func() bool {
		ok, err := h.State()
		return !ok && err != nil && strings.Contains(err.Error(), "did not answer within")
	})
	hang.Store(false)
	eventually(t, "ready again", h.Ready)
}

// TestPanickingCheck: a panicking checker is a failed check, not a crash.
func TestPanickingCheck(t *testing.T) {
	defer goleak.VerifyNone(t)
	h := New(func(context.Context) error { panic("boom") }, interval)
	defer h.Close()
	eventually(t, "a failed check", func() bool {
		_, err := h.State()
		return err != nil && strings.Contains(err.Error(), "panicked: boom")
	})
}

// TestGRPCHealth: grpc.health.v1 on a real server reports NOT_SERVING, then
// SERVING for "" and the Flight service while ready, NOT_SERVING when Kafka
// fails, SERVING after recovery, and NOT_SERVING after Close; Watch sees the
// transitions. Nothing is left running afterwards.
func TestGRPCHealth(t *testing.T) {
	defer goleak.VerifyNone(t)
	kafka := &fakeKafka{}
	kafka.set(errors.New("unreachable"))
	h := New(kafka.check, interval)
	defer h.Close()

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	h.RegisterGRPC(gs)
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	client := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	status := func(service string) healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatalf("Check(%q): %v", service, err)
		}
		return resp.Status
	}
	both := func(want healthpb.HealthCheckResponse_ServingStatus) func() bool {
		return func() bool { return status("") == want && status(FlightService) == want }
	}

	eventually(t, "a first check", func() bool { return kafka.calls.Load() >= 1 })
	for _, svc := range []string{"", FlightService} {
		if s := status(svc); s != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("%q before Kafka answered: %v, want NOT_SERVING", svc, s)
		}
	}
	watch, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: FlightService})
	if err != nil {
		t.Fatal(err)
	}
	expectWatch := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		for {
			resp, err := watch.Recv()
			if err != nil {
				t.Fatalf("Watch: %v", err)
			}
			if resp.Status == want {
				return
			}
		}
	}
	expectWatch(healthpb.HealthCheckResponse_NOT_SERVING)

	kafka.set(nil)
	eventually(t, "SERVING", both(healthpb.HealthCheckResponse_SERVING))
	expectWatch(healthpb.HealthCheckResponse_SERVING)

	kafka.set(errors.New("broker stopped"))
	eventually(t, "NOT_SERVING after Kafka fails", both(healthpb.HealthCheckResponse_NOT_SERVING))
	expectWatch(healthpb.HealthCheckResponse_NOT_SERVING)

	kafka.set(nil)
	eventually(t, "SERVING after recovery", both(healthpb.HealthCheckResponse_SERVING))
	expectWatch(healthpb.HealthCheckResponse_SERVING)

	h.Close()
	h.Close() // idempotent
	if s := status(""); s != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("after Close: %v, want NOT_SERVING", s)
	}
	expectWatch(healthpb.HealthCheckResponse_NOT_SERVING)

	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "no.such.Service"}); err == nil {
		t.Fatal("Check of an unknown service succeeded; want NotFound")
	}
	cancel()
	conn.Close()
	gs.Stop()
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// TestMuxWithoutMetrics: Mux(nil) serves the probes and no /metrics.
func TestMuxWithoutMetrics(t *testing.T) {
	defer goleak.VerifyNone(t)
	h := New(func(context.Context) error { return nil }, interval)
	defer h.Close()
	mux := h.Mux(nil)
	for path, want := range map[string]int{"/healthz": http.StatusOK, "/metrics": http.StatusNotFound} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != want {
			t.Errorf("GET %s: %d, want %d", path, rec.Code, want)
		}
	}
	eventually(t, "ready", h.Ready)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("GET /readyz when ready: %d", rec.Code)
	}
}

// fakeReplica is a Replica whose answer the test sets.
type fakeReplica struct {
	mu   sync.Mutex
	name string
	err  error
}

func (f *fakeReplica) set(name string, err error) {
	f.mu.Lock()
	f.name, f.err = name, err
	f.mu.Unlock()
}

func (f *fakeReplica) get() (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.name, f.err
}

// TestReadinessFollowsReplica: with Kafka reachable, the server is not ready
// until it holds its replica name, ready (naming it on /readyz) while it
// does, and not ready again (naming the reason and the replica) once it
// loses it; the gRPC health service follows, and onChange hears the reason.
func TestReadinessFollowsReplica(t *testing.T) {
	defer goleak.VerifyNone(t)
	replica := &fakeReplica{}
	replica.set("", errors.New("claiming kafka.replica"))
	var reasons []string
	var mu sync.Mutex
	kafka := &fakeKafka{}
	h := New(kafka.check, interval, WithReplica(replica.get), WithOnChange(func(ready bool, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			reasons = append(reasons, err.Error())
		} else {
			reasons = append(reasons, "ready")
		}
	}))
	defer h.Close()
	srv := httptest.NewServer(h.Mux(nil))
	defer srv.Close()

	eventually(t, "a first check", func() bool { return kafka.calls.Load() >= 1 })
	code, body := get(t, srv.URL+"/readyz")
	if code != http.StatusServiceUnavailable || body != "not ready: claiming kafka.replica\n" {
		t.Fatalf("/readyz while claiming: %d %q", code, body)
	}

	replica.set("compose-1", nil)
	eventually(t, "onChange to hear ready", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(reasons) > 0 && reasons[len(reasons)-1] == "ready"
	})
	if code, body := get(t, srv.URL+"/readyz"); code != http.StatusOK || body != "ready\nreplica: compose-1\n" {
		t.Fatalf("/readyz holding the name: %d %q", code, body)
	}

	replica.set("compose-1", errors.New("kafka.replica \"compose-1\" was taken over by a flightsink at 10.0.0.9:8815"))
	if h.Ready() {
		t.Fatal("ready after losing the replica name")
	}
	code, body = get(t, srv.URL+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "taken over by a flightsink at 10.0.0.9:8815") ||
		!strings.HasSuffix(body, "\nreplica: compose-1\n") {
		t.Fatalf("/readyz after losing the name: %d %q", code, body)
	}
	eventually(t, "onChange to hear the loss", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(reasons) > 0 && strings.Contains(reasons[len(reasons)-1], "taken over")
	})
	resp, err := h.grpc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: FlightService})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("gRPC health after losing the name: %v %v", resp, err)
	}
}
