package kafka

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/flightsink/flightsink/internal/secret"
)

// scramCluster is an in-process cluster whose only user is rotor/p1
// (SCRAM-SHA-256), with topic "t". (tests/e2e has the same on a real
// broker; this one runs in every go test.)
func scramCluster(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "rotor", "p1"),
		kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// scramSink is a sink authenticating as rotor with the password in file.
func scramSink(t *testing.T, c *kfake.Cluster, file string) (*Sink, *syncBuffer) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Brokers = c.ListenAddrs()
	cfg.ProduceTimeout = 2 * time.Second
	cfg.MaxExactlyOnceStreams = 2
	cfg.SASL = SASLConfig{Mechanism: "SCRAM-SHA-256", Username: "rotor", Password: secret.Secret{File: file}}
	logs := &syncBuffer{}
	s, err := NewSink(cfg, zerolog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, logs
}

// TestSinkPasswordRotation: the broker's SCRAM password changes; until the
// password file follows, new connections fail; once it follows, they
// succeed, without a restart. (kfake drops a connection whose password is
// wrong where Kafka answers SASL_AUTHENTICATION_FAILED: the refusal's
// wording is tested with TestSinkTokenRotation and in tests/e2e.)
func TestSinkPasswordRotation(t *testing.T) {
	c := scramCluster(t)
	file := filepath.Join(t.TempDir(), "password")
	writeSecret(t, file, "p1")
	s, _ := scramSink(t, c, file)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}

	adminc, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.SASL(scram.Auth{User: "rotor", Pass: "p1"}.AsSha256Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer adminc.Close()
	res, err := kadm.NewClient(adminc).AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{
		{User: "rotor", Mechanism: kadm.ScramSha256, Iterations: 4096, Password: "p2"}})
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatal(err)
	}

	// A new producer (new connections), the file still holding p1.
	if _, err = s.OpenExactlyOnce(ctx, "t", ""); err == nil {
		t.Fatal("a new connection with the old password succeeded")
	}

	writeSecret(t, file, "p2")
	opened, err := s.OpenExactlyOnce(ctx, "t", "")
	if err != nil {
		t.Fatalf("after the file was replaced: %v", err)
	}
	if err := opened.Writer.(Writer).ProduceBatch(ctx, []kgo.Record{{Topic: "t", Value: []byte("v")}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := opened.Writer.Close(ctx, true, Progress{}); err != nil {
		t.Fatalf("commit with the new password: %v", err)
	}
}

// oauthBroker is an in-process cluster whose OAUTHBEARER authentication is
// the test's: it accepts the tokens in valid, with a session lifetime that
// forces re-authentication (KIP-368), and refuses others as Kafka does
// (SASL_AUTHENTICATION_FAILED, {"status":"invalid_token"}).
type oauthBroker struct {
	c        *kfake.Cluster
	mu       sync.Mutex
	valid    map[string]bool
	accepted map[string]int
}

func newOAuthBroker(t *testing.T, lifetime time.Duration, valid ...string) *oauthBroker {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	b := &oauthBroker{c: c, accepted: map[string]int{}}
	b.accept(valid...)
	c.ControlKey(int16(kmsg.SASLHandshake), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		r := req.(*kmsg.SASLHandshakeRequest)
		resp := r.ResponseKind().(*kmsg.SASLHandshakeResponse)
		resp.SupportedMechanisms = []string{"OAUTHBEARER"}
		if r.Mechanism != "OAUTHBEARER" {
			resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		}
		return resp, nil, true
	})
	c.ControlKey(int16(kmsg.SASLAuthenticate), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		r := req.(*kmsg.SASLAuthenticateRequest)
		resp := r.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		_, rest, _ := strings.Cut(string(r.SASLAuthBytes), "auth=Bearer ")
		tok, _, _ := strings.Cut(rest, "\x01")
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.valid[tok] {
			b.accepted[tok]++
			resp.SessionLifetimeMillis = lifetime.Milliseconds()
		} else {
			resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
			msg := `{"status":"invalid_token"}`
			resp.ErrorMessage = &msg
		}
		return resp, nil, true
	})
	return b
}

// accept makes tokens the only valid ones.
func (b *oauthBroker) accept(tokens ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.valid = map[string]bool{}
	for _, tok := range tokens {
		b.valid[tok] = true
	}
}

func (b *oauthBroker) acceptedCount(tok string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.accepted[tok]
}

// eventually polls cond every 50 ms for up to 30 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 30s: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSinkTokenRotation: the broker stops accepting the token the server
// runs with (it expired, it was revoked). Re-authentications are refused:
// Ping and a waiting produce say so, naming the token's file and claims, not
// "unreachable". Once the token file is replaced, the server authenticates
// with the new token without a restart (before, kafka.sasl.token was read
// once at start-up).
func TestSinkTokenRotation(t *testing.T) {
	now := time.Now()
	one, two := unsecuredJWT("one", now, now.Add(time.Hour)), unsecuredJWT("two", now, now.Add(2*time.Hour))
	b := newOAuthBroker(t, 2*time.Second, one)
	file := filepath.Join(t.TempDir(), "token")
	writeSecret(t, file, one)
	cfg := DefaultConfig()
	cfg.Brokers = b.c.ListenAddrs()
	cfg.ProduceTimeout = 2 * time.Second
	cfg.SASL = SASLConfig{Mechanism: "OAUTHBEARER", Token: secret.Secret{File: file}}
	s, err := NewSink(cfg, zerolog.New(&syncBuffer{}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	produce := func(w Writer) error {
		if err := w.ProduceBatch(ctx, []kgo.Record{{Topic: "t", Value: []byte("v")}}, nil); err != nil {
			return err
		}
		return w.Checkpoint(ctx, Progress{})
	}
	w := s.OpenAtLeastOnce().(Writer) // the Writer with ProduceBatch
	if err := errors.Join(s.Ping(ctx), produce(w)); err != nil {
		t.Fatal(err)
	}

	b.accept(two) // token one is no longer valid
	var pingErr error
	eventually(t, "Ping to fail once the sessions of token one end", func() bool { pingErr = s.Ping(ctx); return pingErr != nil })
	want := `Kafka refused authentication (SASL OAUTHBEARER): invalid_token (SASL_AUTHENTICATION_FAILED); the token from file ` +
		file + ` (kafka.sasl.token, sub "one") is valid until `
	if !errors.Is(pingErr, ErrAuthFailed) || !strings.HasPrefix(pingErr.Error(), want) {
		t.Fatalf("Ping: %v\nwant it to start %q", pingErr, want)
	}
	// The producer's own session may outlive the admin client's by a moment.
	eventually(t, "a produce to fail once its session ends", func() bool { err = produce(w); return err != nil })
	if !errors.Is(err, ErrAuthFailed) || !strings.Contains(err.Error(), "Kafka refused authentication (SASL OAUTHBEARER): invalid_token") {
		t.Fatalf("produce with a refused token: %v\nwant the timeout to name the refusal", err)
	}
	t.Logf("Ping: %v\nproduce: %v", pingErr, err)
	_ = w.Close(ctx, false, Progress{})

	writeSecret(t, file, two)
	eventually(t, "Ping to pass with token two", func() bool { return s.Ping(ctx) == nil })
	if err := produce(s.OpenAtLeastOnce().(Writer)); err != nil {
		t.Fatalf("produce after the token file was replaced: %v", err)
	}
	opened, err := s.OpenExactlyOnce(ctx, "t", "")
	if err != nil {
		t.Fatalf("a new transactional producer after the token file was replaced: %v", err)
	}
	_ = opened.Writer.Close(ctx, false, Progress{})
	if b.acceptedCount(two) < 2 {
		t.Fatalf("token two accepted %d times; want every new connection and re-authentication to send it", b.acceptedCount(two))
	}
}
