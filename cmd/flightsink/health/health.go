// Package health reports whether flightsink can do its job: liveness (the
// process serves) and readiness (Kafka is reachable), over HTTP (/healthz,
// /readyz, for Kubernetes probes and load balancers) and over gRPC
// (grpc.health.v1 on the Flight port, for gRPC-aware load balancers).
//
// Readiness comes from a Checker run periodically in a goroutine: the server
// is ready while the last check passed and is at most two intervals old. A
// check that hangs is cut off after one interval and counts as failed, so a
// silent broker turns readiness false within about two intervals. With
// WithReplica, the server is also ready only while it holds its replica
// name, and /readyz shows that name.
//
// Which probe fails, and why:
//   - /readyz (and gRPC NOT_SERVING) fails while Kafka cannot be reached, and
//     while a broker answers but refuses the server's credentials: kafka.Sink.Ping
//     then says "Kafka refused authentication (SASL ...): ..." with what the
//     server knows of its credentials (a token's expiry, the file it reads).
//     Load balancers stop sending streams; streams that open anyway fail with
//     Unavailable, reason kafka_unavailable or kafka_auth_failed.
//   - /healthz (liveness) fails only when the process no longer serves HTTP.
//     Neither an outage nor refused credentials fail it, on purpose: a restart
//     reads the same configuration and secrets and would only drop the open
//     streams, while the running server reads renewed secrets at its next
//     authentication (kafka.sasl is resolved at every authentication) and turns
//     ready again by itself within one check interval. What needs a person (a
//     revoked client, a secret nobody renews) shows as a readiness that stays
//     false with the cause in its body and in the log: alert on that.
package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// FlightService is the gRPC service name whose status follows readiness,
// next to the server-wide "".
const FlightService = "arrow.flight.protocol.FlightService"

// Checker reports whether Kafka is reachable and accepts the server's
// credentials (kafka.Sink.Ping fits). It must honour ctx: it is given one
// interval to answer. Its error is the body of a 503 /readyz.
type Checker func(ctx context.Context) error

// errNoCheck is readiness before the first check has completed.
var errNoCheck = errors.New("no Kafka reachability check has completed yet")

// errClosed is readiness after Close.
var errClosed = errors.New("shutting down")

// Health runs a Checker and publishes its result. Create it with New; stop
// it with Close.
type Health struct {
	check    Checker
	interval time.Duration
	now      func() time.Time
	onChange func(ready bool, err error)
	replica  Replica // nil: no replica claim to report
	grpc     *grpchealth.Server

	mu      sync.Mutex
	lastOK  time.Time // when a check last passed
	lastErr error     // the last check's error; nil if it passed
	ready   bool      // as last published to gRPC and onChange
	closed  bool

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// Option configures a Health.
type Option func(*Health)

// Replica reports the replica name the server claimed and, while it does
// not hold it (still claiming, lost to another server, not renewed), why.
// It is called on every readiness question, so it must be cheap and must
// not call back into Health.
type Replica func() (name string, err error)

// WithReplica makes readiness also require the replica claim: not ready
// while fn returns an error, and /readyz names the replica either way.
func WithReplica(fn Replica) Option {
	return func(h *Health) { h.replica = fn }
}

// WithOnChange calls fn from the checking goroutine whenever readiness
// changes (for logging "Kafka unreachable" / "Kafka reachable again"), with
// the reason when it turns false.
func WithOnChange(fn func(ready bool, err error)) Option {
	return func(h *Health) { h.onChange = fn }
}

// New starts checking every interval (the first check runs at once). Until
// a check passes the server is not ready. Close stops the goroutine.
func New(check Checker, interval time.Duration, opts ...Option) *Health {
	if interval <= 0 {
		panic(fmt.Sprintf("health.New: interval %v must be positive", interval))
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Health{
		check:    check,
		interval: interval,
		now:      time.Now,
		grpc:     grpchealth.NewServer(),
		lastErr:  errNoCheck,
		cancel:   cancel,
		done:     make(chan struct{}),
	}
	for _, o := range opts {
		o(h)
	}
	// grpchealth.NewServer starts "" at SERVING; nothing is ready yet.
	h.setGRPC(healthpb.HealthCheckResponse_NOT_SERVING)
	go h.loop(ctx)
	return h
}

func (h *Health) loop(ctx context.Context) {
	defer close(h.done)
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		h.runCheck(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// runCheck runs one check, bounded by one interval, and publishes the result.
func (h *Health) runCheck(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, h.interval)
	err := h.safeCheck(cctx)
	if err == nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
		err = cctx.Err() // answered, but too late
	}
	cancel()
	if ctx.Err() != nil {
		return // closing: the check was cut short, not failed
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("the Kafka reachability check did not answer within %v: %w", h.interval, err)
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.lastErr = err
	if err == nil {
		h.lastOK = h.now()
	}
	ready, why := h.stateLocked()
	changed := ready != h.ready
	h.ready = ready
	if changed {
		if ready {
			h.setGRPC(healthpb.HealthCheckResponse_SERVING)
		} else {
			h.setGRPC(healthpb.HealthCheckResponse_NOT_SERVING)
		}
	}
	h.mu.Unlock()
	if changed && h.onChange != nil {
		h.onChange(ready, why)
	}
}

// safeCheck turns a panicking checker into a failed check.
func (h *Health) safeCheck(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the Kafka reachability check panicked: %v", r)
		}
	}()
	return h.check(ctx)
}

func (h *Health) setGRPC(s healthpb.HealthCheckResponse_ServingStatus) {
	h.grpc.SetServingStatus("", s)
	h.grpc.SetServingStatus(FlightService, s)
}

// stateLocked is readiness now and, when not ready, why.
func (h *Health) stateLocked() (bool, error) {
	switch {
	case h.closed:
		return false, errClosed
	case h.lastErr != nil:
		return false, h.lastErr
	case h.now().Sub(h.lastOK) > 2*h.interval:
		return false, fmt.Errorf("the last successful Kafka reachability check is %v old (more than 2 × %v)",
			h.now().Sub(h.lastOK).Round(time.Millisecond), h.interval)
	}
	if h.replica != nil {
		if _, err := h.replica(); err != nil {
			return false, err
		}
	}
	return true, nil
}

// Ready reports whether the last check passed within two intervals (and
// Close has not been called).
func (h *Health) Ready() bool {
	ok, _ := h.State()
	return ok
}

// State is Ready plus, when not ready, the reason.
func (h *Health) State() (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stateLocked()
}

// Close stops checking and waits for the goroutine to end. Readiness turns
// false (HTTP 503, gRPC NOT_SERVING for every service) so load balancers stop
// sending new streams: call it when shutdown starts. Liveness is unaffected.
func (h *Health) Close() {
	h.closeOnce.Do(func() {
		h.mu.Lock()
		h.closed = true
		h.ready = false
		h.mu.Unlock()
		h.grpc.Shutdown() // every service NOT_SERVING, and stays so
		h.cancel()
		<-h.done
	})
}

// RegisterGRPC serves grpc.health.v1 on s (the Flight server), reporting ""
// and arrow.flight.protocol.FlightService SERVING while ready.
func (h *Health) RegisterGRPC(s *grpc.Server) {
	healthpb.RegisterHealthServer(s, h.grpc)
}

// HealthzHandler answers 200 "ok" while the process serves HTTP (liveness).
func (h *Health) HealthzHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte("ok\n"))
	})
}

// ReadyzHandler answers 200 "ready" when Ready, else 503 with the reason;
// with WithReplica, a second line "replica: NAME" names the claimed replica.
func (h *Health) ReadyzHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		ok, err := h.State()
		replica := ""
		if h.replica != nil {
			if name, _ := h.replica(); name != "" {
				replica = "replica: " + name + "\n"
			}
		}
		if ok {
			_, _ = w.Write([]byte("ready\n" + replica))
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, "not ready: %v\n%s", err, replica)
	})
}

// Probe GETs url (e.g. http://127.0.0.1:9464/readyz) and returns nil on a
// 200, else an error with the status and body: the container healthcheck of
// an image with no shell or curl (`flightsink healthcheck URL`). It gives up
// after 5 s unless ctx ends sooner.
func Probe(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// Mux serves /healthz, /readyz and, when metrics is not nil, /metrics: the
// whole metrics listener (metrics.listen).
func (h *Health) Mux(metrics http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", h.HealthzHandler())
	mux.Handle("GET /readyz", h.ReadyzHandler())
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	return mux
}
