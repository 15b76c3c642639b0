package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/flightsink/flightsink/cmd/flightsink/config"
	"github.com/flightsink/flightsink/kafka"
)

// backoff is the wait before each next try: 1s, 2s, 4s, 8s, then 15s.
type backoff func(try int) time.Duration

func newBackoff() backoff {
	return func(try int) time.Duration {
		if try >= 5 {
			return 15 * time.Second
		}
		return time.Second << (try - 1)
	}
}

// waitForKafka pings Kafka until it answers, trying again with backoff and
// logging each failed try, for at most timeout (kafka.startup_timeout; 0:
// one try). Errors a retry cannot fix (a refused TLS certificate, a SASL
// login Kafka rejects) end the wait at once. A signal (ctx) ends it too.
func waitForKafka(ctx context.Context, ping func(context.Context) error, timeout time.Duration, log zerolog.Logger, wait backoff) error {
	deadline := time.Now().Add(timeout)
	for try := 1; ; try++ {
		// One try lasts at most 10s (a connection refused is retried
		// within it), so each failure is logged while the wait goes on.
		tctx, cancel := context.WithTimeout(ctx, max(min(10*time.Second, time.Until(deadline)), time.Second))
		err := ping(tctx)
		cancel()
		if err == nil {
			if try > 1 {
				log.Info().Int("try", try).Msg("Kafka answers")
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("stopped while waiting for Kafka: %w", err)
		}
		if permanent(err) {
			return err
		}
		next := wait(try)
		if left := time.Until(deadline); left <= 0 {
			return fmt.Errorf("%w (gave up after %d tries in kafka.startup_timeout %v)", err, try, timeout)
		} else if next > left {
			next = left
		}
		log.Warn().Err(err).Int("try", try).Stringer("next_try_in", next).Stringer("startup_timeout", timeout).
			Msg("Kafka is not reachable yet; trying again")
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("stopped while waiting for Kafka: %w", err)
		case <-t.C:
		}
	}
}

// permanent reports whether a failed ping cannot succeed on a retry: the
// brokers' certificate is refused, TLS meets a plaintext listener, or
// Kafka answered with a non-retriable error (a SASL login it rejects), or
// the credentials could not be obtained (a token endpoint refusing the
// client secret): fixing those takes a person, and the message says what.
func permanent(err error) bool {
	if errors.Is(err, kafka.ErrAuthFailed) {
		return true
	}
	var (
		ke     *kerr.Error
		verify *tls.CertificateVerificationError
		header tls.RecordHeaderError
		alert  tls.AlertError
		unk    x509.UnknownAuthorityError
		host   x509.HostnameError
		inv    x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &ke):
		return !ke.Retriable
	case errors.As(err, &verify), errors.As(err, &header), errors.As(err, &alert),
		errors.As(err, &unk), errors.As(err, &host), errors.As(err, &inv):
		return true
	}
	return false
}

// identity is what this server tells others in its replica claim: the
// Flight address (the host name when it listens on every interface), host,
// pid and start time.
func identity(listen string, started time.Time) kafka.ReplicaIdentity {
	host, _ := os.Hostname()
	addr := listen
	if h, port, err := net.SplitHostPort(listen); err == nil && host != "" {
		if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
			addr = net.JoinHostPort(host, port)
		}
	}
	return kafka.ReplicaIdentity{Address: addr, Host: host, PID: os.Getpid(), Started: started}
}

// devPort checks --dev-kafka-addr and returns its port.
func devPort(addr string) (int, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("--dev-kafka-addr: %q must be host:port: %w", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return 0, fmt.Errorf("--dev-kafka-addr: port %q is not a port number", port)
	}
	return p, nil
}

// startDevKafka starts the embedded in-memory broker for --dev.
func startDevKafka(addr string) (*kfake.Cluster, error) {
	p, err := devPort(addr)
	if err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(addr)
	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.Ports(p),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(host, port))
		}),
		kfake.DefaultNumPartitions(3),
	)
	if err != nil {
		return nil, fmt.Errorf("starting the embedded dev broker on %s (is a Kafka already listening there? use --dev-kafka-addr): %w", addr, err)
	}
	return cluster, nil
}

// newLogger makes the logger c (validated) describes.
func newLogger(c config.Log) zerolog.Logger {
	level, err := zerolog.ParseLevel(c.Level)
	if err != nil {
		level = zerolog.InfoLevel
	}
	var log zerolog.Logger
	if c.Format == "console" {
		log = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.RFC3339})
	} else {
		log = zerolog.New(os.Stderr)
	}
	// Durations as text with their unit ("30s", "1.5ms"), not bare numbers.
	zerolog.DurationFieldFormat = zerolog.DurationFormatString
	return log.Level(level).With().Timestamp().Logger()
}
