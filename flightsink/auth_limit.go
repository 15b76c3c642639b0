package flightsink

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"

	"github.com/flightsink/flightsink/internal/metrics"
)

// Defaults of auth.max_failures and auth.failure_window.
const (
	defaultMaxFailures   = 10
	defaultFailureWindow = time.Minute
)

// maxTrackedPeers bounds the failure limiter's memory: beyond it, peers
// share one bucket (a flood of addresses limits itself, not the server).
const maxTrackedPeers = 10_000

// Failed authentications are logged at most failureLogBurst at once, then
// one per failureLogEvery; the next line logged says how many were not.
const (
	failureLogEvery = time.Second
	failureLogBurst = 20
)

// failureLimiter is a token bucket of failed authentications per peer
// address: a peer may fail burst times, then once per refill interval
// (burst per window). While its bucket is empty its attempts are refused
// without being checked, so guessing is slow and costs no bcrypt.
type failureLimiter struct {
	limit  rate.Limit
	burst  int
	window time.Duration

	mu     sync.Mutex
	peers  map[string]*rate.Limiter
	shared *rate.Limiter // for peers beyond maxTrackedPeers
}

func newFailureLimiter(maxFailures int, window time.Duration) (*failureLimiter, error) {
	if maxFailures < 0 {
		return nil, fmt.Errorf("auth.max_failures: %d must not be negative (0: %d)", maxFailures, defaultMaxFailures)
	}
	if window < 0 {
		return nil, fmt.Errorf("auth.failure_window: %v must not be negative (0: %v)", window, defaultFailureWindow)
	}
	if maxFailures == 0 {
		maxFailures = defaultMaxFailures
	}
	if window == 0 {
		window = defaultFailureWindow
	}
	l := &failureLimiter{limit: rate.Limit(float64(maxFailures) / window.Seconds()), burst: maxFailures, window: window,
		peers: map[string]*rate.Limiter{}}
	l.shared = rate.NewLimiter(l.limit, l.burst)
	return l, nil
}

// wait returns how long peer must wait before its next attempt is
// checked; 0 when it may try now.
func (l *failureLimiter) wait(peer string, now time.Time) time.Duration {
	l.mu.Lock()
	lim := l.peers[peer]
	if lim == nil && len(l.peers) >= maxTrackedPeers {
		lim = l.shared
	}
	l.mu.Unlock()
	if lim == nil {
		return 0
	}
	tokens := lim.TokensAt(now)
	if tokens >= 1 {
		return 0
	}
	return time.Duration(math.Ceil((1 - tokens) / float64(l.limit) * float64(time.Second)))
}

// failed takes one failure off peer's bucket.
func (l *failureLimiter) failed(peer string, now time.Time) {
	l.mu.Lock()
	lim := l.peers[peer]
	if lim == nil {
		if len(l.peers) >= maxTrackedPeers {
			for p, pl := range l.peers { // forget peers whose bucket is full again
				if pl.TokensAt(now) >= float64(l.burst) {
					delete(l.peers, p)
				}
			}
		}
		if len(l.peers) < maxTrackedPeers {
			lim = rate.NewLimiter(l.limit, l.burst)
			l.peers[peer] = lim
		} else {
			lim = l.shared
		}
	}
	l.mu.Unlock()
	lim.AllowN(now, 1)
}

// peerAddr is the RPC's peer address, for the log.
func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return "unknown"
}

// peerKey is what failures are counted by: the peer's IP address (an IPv6
// address by its /64, which one host usually owns whole), without the port.
func peerKey(ctx context.Context) string {
	addr := peerAddr(ctx)
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// checkLimit refuses an attempt from a peer that failed too often:
// ResourceExhausted, saying when to try again.
func (a *authenticator) checkLimit(ctx context.Context) error {
	key := peerKey(ctx)
	wait := a.limiter.wait(key, a.now())
	if wait == 0 {
		return nil
	}
	a.record(ctx, &failure{reason: metrics.AuthRateLimited})
	return newError(codes.ResourceExhausted, ReasonAuthRateLimited,
		"too many failed authentications from %s: at most auth.max_failures (%d) per auth.failure_window (%v); try again in %v",
		key, a.limiter.burst, a.limiter.window, time.Duration(math.Ceil(wait.Seconds()))*time.Second)
}

// fail counts, logs and (for a guess) limits a failed authentication, and
// returns the client's error.
func (a *authenticator) fail(ctx context.Context, f *failure) error {
	if f.guess {
		a.limiter.failed(peerKey(ctx), a.now())
	}
	a.record(ctx, f)
	return f.err
}

func (a *authenticator) record(ctx context.Context, f *failure) {
	a.metrics.AuthFailure(f.reason)
	a.failures.record(a.now(), peerAddr(ctx), f)
}

// failureLog logs failed authentications at a bounded rate: peer, reason,
// the known user or the fingerprint of what was sent, never a secret.
type failureLog struct {
	logger     zerolog.Logger
	limit      *rate.Limiter
	suppressed atomic.Int64
}

func newFailureLog(log zerolog.Logger, every time.Duration, burst int) *failureLog {
	return &failureLog{logger: log, limit: rate.NewLimiter(rate.Every(every), burst)}
}

func (l *failureLog) record(now time.Time, peer string, f *failure) {
	if !l.limit.AllowN(now, 1) {
		l.suppressed.Add(1)
		return
	}
	ev := l.logger.Warn().Str("peer", peer).Str("reason", f.reason)
	if f.user != "" {
		ev = ev.Str("user", f.user)
	}
	if f.fingerprint != "" {
		ev = ev.Str("sha256_prefix", f.fingerprint)
	}
	if n := l.suppressed.Swap(0); n > 0 {
		ev = ev.Int64("not_logged_before", n)
	}
	ev.Msg("authentication failed")
}
